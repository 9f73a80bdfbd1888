package daemon_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/client"
	"github.com/agentcloud/agentcloud/internal/auth"
	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/daemon"
)

// TestSecretMetadataRunClass: a change of an existing secret's metadata
// (allowed hosts, plain http) is a pipeline run whose value is the
// metadata alone — through PUT .../metadata and through a PUT of the
// secret that also replaces the value. An administrator's change applies
// at once; the owner widening their own secret waits for an
// administrator (not the owner, not another tenant); the owner narrowing
// it needs nobody; bad metadata is 400 naming the field with no run; a
// secret that does not exist is 404. The values set along the way are in
// no run record, log, diff, ledger entry, audit event, daemon log line or
// file of the data directory, in plain, base64 or hex form.
func TestSecretMetadataRunClass(t *testing.T) {
	var logs lockedBuffer
	cfg := config.Default()
	cfg.Data = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	cfg.SandboxPoolGVisor = 0 // a warm gVisor sandbox per test node costs a runsc start; the tier's tests cover the pool
	d, err := daemon.New(cfg, slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() { once.Do(func() { _ = d.Shutdown(context.Background()) }) }
	t.Cleanup(stop)
	tok, err := os.ReadFile(filepath.Join(cfg.Data, auth.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	admin, err := client.New("http://"+d.Addr(), strings.TrimSpace(string(tok)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	alice := userClient(t, d, admin, "user:alice")
	bob := userClient(t, d, admin, "user:bob")
	var values []string
	newValue := func() string {
		b := make([]byte, 12)
		_, _ = rand.Read(b)
		v := "sv-" + hex.EncodeToString(b)
		values = append(values, v)
		return v
	}

	// An administrator's secret: created at once, its hosts changed by a run.
	if s, err := admin.SetSecret(ctx, "crmkey", api.SecretRequest{Value: newValue(), AllowHosts: []string{"crm.example.com"}}); err != nil || s.Run != "" {
		t.Fatalf("create: %+v %v", s, err)
	}
	s, err := admin.SetSecretMetadata(ctx, "crmkey", api.SecretMetadata{AllowHosts: []string{"crm.example.com", "API.crm.example.com"}})
	if err != nil || s.RunState != api.RunPassed || !slices.Equal(s.AllowHosts, []string{"api.crm.example.com", "crm.example.com"}) {
		t.Fatalf("admin's metadata change: %+v %v", s, err)
	}
	var runs []string
	runs = append(runs, s.Run)
	// The same hosts with a new value: the value is replaced, no run.
	if s, err = admin.SetSecret(ctx, "crmkey", api.SecretRequest{Value: newValue(), AllowHosts: []string{"crm.example.com", "api.crm.example.com"}}); err != nil || s.Run != "" {
		t.Fatalf("rotate: %+v %v", s, err)
	}

	// Alice's secret: her widening waits for an administrator.
	if _, err := alice.SetSecret(ctx, "alicekey", api.SecretRequest{Value: newValue(), AllowHosts: []string{"a.example.com"}}); err != nil {
		t.Fatal(err)
	}
	s, err = alice.SetSecret(ctx, "alicekey", api.SecretRequest{Value: newValue(), AllowHosts: []string{"a.example.com", "b.example.com"}, AllowHTTP: true})
	if err != nil || s.RunState != api.RunWaiting || !slices.Equal(s.AllowHosts, []string{"a.example.com"}) || s.AllowHTTP {
		t.Fatalf("alice widening her secret: %+v %v", s, err)
	}
	runs = append(runs, s.Run)
	run, err := admin.PipelineRun(ctx, s.Run)
	if err != nil || run.Config == nil || run.Config.Target != api.ConfigSecret || run.Config.Owner == "" ||
		!slices.Equal(run.Config.Adds, []string{"allow_http", "b.example.com"}) {
		t.Fatalf("run %+v %v", run, err)
	}
	hostileTenant(t, bob, s.Run)
	if _, err := alice.ApproveRun(ctx, s.Run, "mine"); !api.IsKind(err, api.KindForbidden) {
		t.Fatalf("alice approving her own change: %v", err)
	}
	_, err = bob.SetSecretMetadata(ctx, "alicekey", api.SecretMetadata{AllowHosts: []string{"bob.example.com"}})
	wantKind(t, "bob changing alice's secret", err, api.KindForbidden, "")
	if _, err := admin.ApproveRun(ctx, s.Run, "ok"); err != nil {
		t.Fatal(err)
	}
	if done, err := admin.WaitRun(ctx, s.Run); err != nil || done.State != api.RunPassed {
		t.Fatalf("approved: %+v %v", done, err)
	}
	if got, err := alice.Secret(ctx, "alicekey"); err != nil || !slices.Equal(got.AllowHosts, []string{"a.example.com", "b.example.com"}) || !got.AllowHTTP {
		t.Fatalf("after the review: %+v %v", got, err)
	}
	// Narrowing her own secret needs nobody.
	s, err = alice.SetSecretMetadata(ctx, "alicekey", api.SecretMetadata{AllowHosts: []string{"b.example.com"}})
	if err != nil || s.RunState != api.RunPassed || !slices.Equal(s.AllowHosts, []string{"b.example.com"}) || s.AllowHTTP {
		t.Fatalf("alice narrowing: %+v %v", s, err)
	}
	runs = append(runs, s.Run)

	// Bad metadata: 400 naming the field, no run, nothing changed.
	before, _ := admin.PipelineRuns(ctx, "", 0)
	for field, m := range map[string]api.SecretMetadata{
		"allow_hosts":    {},
		"allow_hosts[1]": {AllowHosts: []string{"ok.example.com", "bad host!"}},
	} {
		_, err := admin.SetSecretMetadata(ctx, "crmkey", m)
		if p := api.AsProblem(err); p.Kind() != api.KindValidation || p.Field != field {
			t.Errorf("%v: %v (field %q), want a validation problem naming %s", m, err, p.Field, field)
		}
		_, err = admin.SetSecret(ctx, "crmkey", api.SecretRequest{Value: newValue(), AllowHosts: m.AllowHosts})
		if p := api.AsProblem(err); p.Kind() != api.KindValidation || p.Field != field {
			t.Errorf("PUT %v: %v (field %q), want a validation problem naming %s", m, err, p.Field, field)
		}
	}
	_, err = admin.SetSecretMetadata(ctx, "nope", api.SecretMetadata{AllowHosts: []string{"x.example.com"}})
	wantKind(t, "metadata of a secret that does not exist", err, api.KindNotFound, "nope")
	if got, _ := admin.PipelineRuns(ctx, "", 0); len(got) != len(before) {
		t.Fatalf("refused changes made %d runs", len(got)-len(before))
	}

	// The values are nowhere: run records, logs, diffs, the ledger, the audit stream.
	var seen bytes.Buffer
	for _, id := range runs {
		r, err := admin.PipelineRun(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(r)
		seen.Write(b)
		lg, err := admin.PipelineLogs(ctx, id, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		b, _ = json.Marshal(lg)
		seen.Write(b)
		df, err := admin.PipelineDiff(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		b, _ = json.Marshal(df)
		seen.Write(b)
		if !strings.Contains(string(b), "allow_hosts") {
			t.Fatalf("diff of %s shows no metadata: %s", id, b)
		}
	}
	ev, err := admin.Audit(ctx, client.AuditQuery{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(ev)
	seen.Write(b)
	if _, err := admin.LedgerVerify(ctx); err != nil {
		t.Fatalf("ledger verify: %v", err)
	}
	stop() // the data directory as it rests
	var data bytes.Buffer
	_ = filepath.WalkDir(cfg.Data, func(path string, e fs.DirEntry, err error) error {
		if err == nil && e.Type().IsRegular() {
			if b, err := os.ReadFile(path); err == nil {
				data.Write(b)
			}
		}
		return nil
	})
	// The store keeps what it is given as it is: the metadata is there in
	// plain (so a value would be too).
	if !bytes.Contains(data.Bytes(), []byte("api.crm.example.com")) || !bytes.Contains(logs.Bytes(), []byte("pipeline")) {
		t.Fatalf("the search cannot see the store (%d bytes) or the log (%d bytes)", data.Len(), len(logs.Bytes()))
	}
	seen.Write(data.Bytes())
	seen.Write(logs.Bytes())
	for _, v := range values {
		for _, form := range []string{v, base64.StdEncoding.EncodeToString([]byte(v)), base64.RawURLEncoding.EncodeToString([]byte(v)), hex.EncodeToString([]byte(v))} {
			if i := bytes.Index(seen.Bytes(), []byte(form)); i >= 0 {
				t.Errorf("secret value %s found as %q: …%q…", v, form, seen.Bytes()[max(0, i-80):min(seen.Len(), i+80)])
			}
		}
	}
}
