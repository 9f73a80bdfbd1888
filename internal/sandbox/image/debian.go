//go:build linux

package image

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/agentcloud/agentcloud/api"
)

var (
	suiteRE   = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)
	packageRE = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]{0,99}$`)
)

// maxPackages bounds --packages.
const maxPackages = 200

// CheckDebian validates a --from-debian request.
func CheckDebian(suite string, packages []string) error {
	if !suiteRE.MatchString(suite) {
		return invalid("suite %q: want a Debian suite name such as the one in /etc/apt/sources.list (a-z first, then a-z 0-9 -)", suite)
	}
	if len(packages) > maxPackages {
		return invalid("%d packages; the limit is %d", len(packages), maxPackages)
	}
	for _, p := range packages {
		if !packageRE.MatchString(p) {
			return invalid("package %q is not a Debian package name", p)
		}
	}
	return nil
}

// FromDebian makes template name from a Debian root filesystem that
// mmdebstrap builds (variant minbase, plus packages) from the package
// mirror this host's apt uses for suite. The tree then goes through the
// same checks as any directory (its device nodes are dropped first: every
// tier gives a sandbox its own /dev).
func (s *Store) FromDebian(ctx context.Context, name, suite string, packages []string) (Template, error) {
	if err := CheckName(name); err != nil {
		return Template{}, err
	}
	if err := CheckDebian(suite, packages); err != nil {
		return Template{}, err
	}
	tool, err := exec.LookPath("mmdebstrap")
	if err != nil {
		return Template{}, api.Errorf(api.KindUnavailable, "--from-debian needs mmdebstrap on the daemon's host (scripts/deps.sh installs it): %v", err)
	}
	mirror, err := aptMirror(suite)
	if err != nil {
		return Template{}, err
	}
	tmp, err := os.MkdirTemp(s.tmpDir(), "debian-")
	if err != nil {
		return Template{}, err
	}
	defer os.RemoveAll(tmp)
	root := filepath.Join(tmp, "root")
	args := []string{"--variant=minbase", "--mode=root", "--format=directory", "--quiet"}
	if len(packages) > 0 {
		args = append(args, "--include="+strings.Join(packages, ","))
	}
	args = append(args, suite, root, "deb "+mirror+" "+suite+" main")
	cmd := exec.CommandContext(ctx, tool, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return Template{}, ctx.Err()
		}
		return Template{}, invalid("mmdebstrap could not build %s with %v: %v: %s", suite, packages, err, lastLines(stderr.String(), 5))
	}
	dev := filepath.Join(root, "dev")
	if err := os.RemoveAll(dev); err != nil {
		return Template{}, err
	}
	if err := os.Mkdir(dev, 0o755); err != nil {
		return Template{}, err
	}
	return s.fromDir(ctx, name, root, "debian")
}

// aptMirror returns the URI of the first apt source (one-line
// sources.list or deb822 .sources) that lists suite, else of the first
// source.
func aptMirror(suite string) (string, error) {
	files := []string{"/etc/apt/sources.list"}
	more, _ := filepath.Glob("/etc/apt/sources.list.d/*.sources")
	files = append(files, more...)
	more, _ = filepath.Glob("/etc/apt/sources.list.d/*.list")
	files = append(files, more...)
	first := ""
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, src := range parseSources(string(b)) {
			if first == "" {
				first = src.uri
			}
			for _, su := range src.suites {
				if su == suite {
					return src.uri, nil
				}
			}
		}
	}
	if first == "" {
		return "", api.Errorf(api.KindUnavailable, "--from-debian: the daemon's host has no apt package source (/etc/apt/sources.list)")
	}
	return first, nil
}

type aptSource struct {
	uri    string
	suites []string
}

// parseSources reads "deb URI SUITE COMP..." lines and deb822 stanzas
// (Types/URIs/Suites) of type deb.
func parseSources(text string) []aptSource {
	var out []aptSource
	stanza := map[string]string{}
	flush := func() {
		if strings.Contains(" "+stanza["types"]+" ", " deb ") && stanza["uris"] != "" {
			out = append(out, aptSource{uri: strings.Fields(stanza["uris"])[0], suites: strings.Fields(stanza["suites"])})
		}
		stanza = map[string]string{}
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			flush()
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue
		}
		if f := strings.Fields(line); f[0] == "deb" {
			if len(f) >= 3 && !strings.HasPrefix(f[1], "[") {
				out = append(out, aptSource{uri: f[1], suites: []string{f[2]}})
			} else if len(f) >= 4 { // deb [options] URI SUITE
				i := 1
				for i < len(f) && !strings.HasSuffix(f[i], "]") {
					i++
				}
				if i+2 < len(f) {
					out = append(out, aptSource{uri: f[i+1], suites: []string{f[i+2]}})
				}
			}
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok && !strings.Contains(k, " ") {
			stanza[strings.ToLower(k)] = strings.TrimSpace(v)
		}
	}
	flush()
	return out
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
