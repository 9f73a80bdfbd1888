package ledger

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

func TestCheckpointRoundTrip(t *testing.T) {
	k := mustKey(t)
	if k.Origin() != testOrigin || k.VerifierKey() != testVKey {
		t.Fatalf("key: origin %q vkey %q, want %q", k.Origin(), k.VerifierKey(), testVKey)
	}
	root := LeafHash([]byte("r"))
	cp, err := signCheckpoint(k, 42, root)
	if err != nil {
		t.Fatal(err)
	}
	text := string(cp.Signed)
	if !strings.HasPrefix(text, testOrigin+"\n42\n") || !strings.Contains(text, "\n\n— "+testOrigin+" ") {
		t.Fatalf("not a C2SP checkpoint:\n%s", text)
	}
	got, err := OpenCheckpoint(cp.Signed, testVKey)
	if err != nil || got.Size != 42 || got.Root != root || got.Origin != testOrigin {
		t.Fatalf("open: %+v %v", got, err)
	}
	_, otherV, _ := GenerateKey(testOrigin)
	if _, err := OpenCheckpoint(cp.Signed, otherV); !errors.Is(err, ErrBadCheckpoint) {
		t.Fatalf("another key with the same name: %v", err)
	}
	forged := strings.Replace(text, "\n42\n", "\n43\n", 1)
	if _, err := OpenCheckpoint([]byte(forged), testVKey); !errors.Is(err, ErrBadCheckpoint) {
		t.Fatalf("forged size: %v", err)
	}
	// A key whose name is not the origin of the checkpoint it signed.
	s2, v2, _ := GenerateKey("other.example/log")
	signer, _ := note.NewSigner(s2)
	n, _ := note.Sign(&note.Note{Text: checkpointText(testOrigin, 1, root)}, signer)
	if _, err := OpenCheckpoint(n, v2); !errors.Is(err, ErrBadCheckpoint) {
		t.Fatalf("origin is not the key name: %v", err)
	}
}

func TestGenerateKeyRefusesBadOrigin(t *testing.T) {
	for _, o := range []string{"", "has space", "a+b", "new\nline", strings.Repeat("o", 300), "caf\xc3\xa9"} {
		if _, _, err := GenerateKey(o); err == nil {
			t.Errorf("origin %q accepted", o)
		}
	}
	if _, err := ParseKey("PRIVATE+KEY+nonsense"); err == nil {
		t.Error("bad private key parsed")
	}
	if _, err := ParseKey(testVKey); err == nil {
		t.Error("a public key parsed as private")
	}
}

var checkpointTexts = []string{
	"o\n1\n" + strings.Repeat("A", 43) + "=\n",
	"o\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\next\n",
	"o\n01\nAAAA\n",
	"o\n-1\nAAAA\n",
	"\n1\nAAAA\n",
	"o\n1\n",
	"o\n18446744073709551616\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",
}

// FuzzParseCheckpointText: the checkpoint body parser never panics and
// what it accepts writes back to the same first three lines.
func FuzzParseCheckpointText(f *testing.F) {
	for _, s := range checkpointTexts {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		cp, err := parseCheckpointText(text)
		if err != nil {
			if !errors.Is(err, ErrBadCheckpoint) {
				t.Fatalf("error is not ErrBadCheckpoint: %v", err)
			}
			return
		}
		if !strings.HasPrefix(text, checkpointText(cp.Origin, cp.Size, cp.Root)) {
			t.Fatalf("%q parses as %+v", text, cp)
		}
	})
}

// FuzzOpenCheckpoint: opening arbitrary signed notes never panics and
// accepts only what the key signed.
func FuzzOpenCheckpoint(f *testing.F) {
	k, _ := ParseKey(testSKey)
	cp, _ := signCheckpoint(k, 7, LeafHash([]byte("x")))
	f.Add(cp.Signed)
	f.Add([]byte("o\n1\nAAAA\n\n— o AAAA\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := OpenCheckpoint(data, testVKey)
		if err != nil {
			return
		}
		if got.Origin != testOrigin {
			t.Fatalf("accepted origin %q", got.Origin)
		}
	})
}

// FuzzParseKey: parsing a private key never panics, and a key it accepts
// signs checkpoints its own verifier key opens.
func FuzzParseKey(f *testing.F) {
	f.Add(testSKey)
	f.Add("PRIVATE+KEY+a+00000000+AQ==")
	f.Add(testVKey)
	f.Fuzz(func(t *testing.T, skey string) {
		k, err := ParseKey(skey)
		if err != nil {
			return
		}
		cp, err := signCheckpoint(k, 1, emptyRoot)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := OpenCheckpoint(cp.Signed, k.VerifierKey()); err != nil {
			t.Fatalf("own checkpoint does not open: %v", err)
		}
	})
}
