package textdiff

import (
	"fmt"
	"math/rand"
	"strconv"
	"strings"
	"testing"
)

var cases = []struct {
	name, a, b, want string
}{
	{"equal", "x\n", "x\n", ""},
	{"add to empty", "", "a\nb\n", "--- a\n+++ b\n@@ -0,0 +1,2 @@\n+a\n+b\n"},
	{"remove all", "a\nb\n", "", "--- a\n+++ b\n@@ -1,2 +0,0 @@\n-a\n-b\n"},
	{"change middle", "1\n2\n3\n4\n5\n6\n7\n8\n9\n", "1\n2\n3\n4\nfive\n6\n7\n8\n9\n",
		"--- a\n+++ b\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+five\n 6\n 7\n 8\n"},
	{"no newline at end", "a\nb", "a\nc",
		"--- a\n+++ b\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+c\n\\ No newline at end of file\n"},
	{"two hunks", "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n", "one\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\ntwelve\n",
		"--- a\n+++ b\n@@ -1,4 +1,4 @@\n-1\n+one\n 2\n 3\n 4\n@@ -9,4 +9,4 @@\n 9\n 10\n 11\n-12\n+twelve\n"},
	{"joined hunks", "1\n2\n3\n4\n5\n6\n7\n8\n", "one\n2\n3\n4\n5\n6\n7\neight\n",
		"--- a\n+++ b\n@@ -1,8 +1,8 @@\n-1\n+one\n 2\n 3\n 4\n 5\n 6\n 7\n-8\n+eight\n"},
	{"insert after line", "a\nb\nc\nd\ne\nf\ng\nh\n", "a\nb\nc\nd\nnew\ne\nf\ng\nh\n",
		"--- a\n+++ b\n@@ -2,6 +2,7 @@\n b\n c\n d\n+new\n e\n f\n g\n"},
}

func TestUnified(t *testing.T) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Unified("a", "b", c.a, c.b, Options{})
			if got != c.want {
				t.Errorf("Unified:\n%s\nwant:\n%s", got, c.want)
			}
			if got != "" {
				if back, err := patch(c.a, got); err != nil || back != c.b {
					t.Errorf("patch(a, diff) = %q, %v; want %q", back, err, c.b)
				}
			}
		})
	}
}

// TestMinimal checks the edit script is minimal on inputs small enough to
// compare with a quadratic LCS.
func TestMinimal(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 500; i++ {
		a, b := randLines(r, 30), randLines(r, 30)
		edits := Lines(a, b, Options{})
		if got := Apply(a, b, edits); strings.Join(got, "") != strings.Join(b, "") {
			t.Fatalf("Apply(Lines(%q, %q)) = %q", a, b, got)
		}
		kept := 0
		for _, e := range edits {
			if e.Op == Equal {
				kept += e.A1 - e.A0
			}
		}
		if want := lcs(a, b); kept != want {
			t.Fatalf("Lines(%q, %q) keeps %d lines; the LCS has %d", a, b, kept, want)
		}
	}
}

// TestBudget: past its budget the diff is still correct, only not minimal.
func TestBudget(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	a, b := randLines(r, 2000), randLines(r, 2000)
	edits := Lines(a, b, Options{Budget: 100})
	if got := Apply(a, b, edits); strings.Join(got, "") != strings.Join(b, "") {
		t.Fatal("budgeted diff does not apply")
	}
	d := Unified("a", "b", strings.Join(a, ""), strings.Join(b, ""), Options{Budget: 100})
	if back, err := patch(strings.Join(a, ""), d); err != nil || back != strings.Join(b, "") {
		t.Fatalf("budgeted unified diff does not patch: %v", err)
	}
}

func BenchmarkUnrelated(b *testing.B) {
	r := rand.New(rand.NewSource(3))
	x, y := strings.Join(randLines(r, 10000), ""), strings.Join(randLines(r, 10000), "")
	for b.Loop() {
		Unified("a", "b", x, y, Options{})
	}
}

func FuzzUnified(f *testing.F) {
	for _, c := range cases {
		f.Add(c.a, c.b)
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		la, lb := SplitLines(a), SplitLines(b)
		if got := strings.Join(Apply(la, lb, Lines(la, lb, Options{})), ""); got != b {
			t.Fatalf("Apply = %q, want %q", got, b)
		}
		d := Unified("a", "b", a, b, Options{Budget: 1000})
		if a == b {
			if d != "" {
				t.Fatalf("diff of equal texts: %q", d)
			}
			return
		}
		if back, err := patch(a, d); err != nil || back != b {
			t.Fatalf("patch(%q, %q) = %q, %v; want %q", a, d, back, err, b)
		}
	})
}

func randLines(r *rand.Rand, n int) []string {
	out := make([]string, r.Intn(n+1))
	for i := range out {
		out[i] = strconv.Itoa(r.Intn(8)) + "\n"
	}
	return out
}

func lcs(a, b []string) int {
	dp := make([][]int, len(a)+1)
	for i := range dp {
		dp[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				dp[i][j] = dp[i+1][j+1] + 1
			} else {
				dp[i][j] = max(dp[i+1][j], dp[i][j+1])
			}
		}
	}
	return dp[0][0]
}

// patch applies a unified diff to a, checking every context and deleted
// line, as patch(1) would without fuzz.
func patch(a, diff string) (string, error) {
	src := SplitLines(a)
	lines := SplitLines(diff)
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "--- ") || !strings.HasPrefix(lines[1], "+++ ") {
		return "", fmt.Errorf("no header")
	}
	var out []string
	pos := 0
	for i := 2; i < len(lines); {
		var as, al, bs, bl int
		h := strings.TrimSuffix(lines[i], "\n")
		if _, err := fmt.Sscanf(h, "@@ -%s +%s @@", new(string), new(string)); err != nil {
			return "", fmt.Errorf("bad hunk header %q", h)
		}
		parts := strings.Fields(h)
		as, al = parseRange(strings.TrimPrefix(parts[1], "-"))
		bs, bl = parseRange(strings.TrimPrefix(parts[2], "+"))
		_ = bs
		start := as - 1
		if al == 0 {
			start = as
		}
		if start < pos || start > len(src) {
			return "", fmt.Errorf("hunk %q out of order", h)
		}
		out = append(out, src[pos:start]...)
		pos = start
		i++
		na, nb := 0, 0
		for i < len(lines) && !strings.HasPrefix(lines[i], "@@") {
			l := lines[i]
			i++
			noNL := i < len(lines) && lines[i] == "\\ No newline at end of file\n"
			text := l[1:]
			if noNL {
				text = strings.TrimSuffix(text, "\n")
				i++
			}
			switch l[0] {
			case ' ', '-':
				if pos >= len(src) || src[pos] != text {
					return "", fmt.Errorf("line %d: context %q does not match %q", pos, text, src[min(pos, len(src)-1)])
				}
				pos++
				na++
				if l[0] == ' ' {
					out = append(out, text)
					nb++
				}
			case '+':
				out = append(out, text)
				nb++
			default:
				return "", fmt.Errorf("bad line %q", l)
			}
		}
		if na != al || nb != bl {
			return "", fmt.Errorf("hunk %q has %d/%d lines", h, na, nb)
		}
	}
	out = append(out, src[pos:]...)
	return strings.Join(out, ""), nil
}

func parseRange(s string) (start, n int) {
	a, b, ok := strings.Cut(s, ",")
	start, _ = strconv.Atoi(a)
	n = 1
	if ok {
		n, _ = strconv.Atoi(b)
	}
	return start, n
}
