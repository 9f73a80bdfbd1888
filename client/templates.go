package client

import (
	"archive/tar"
	"context"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/agentcloud/agentcloud/api"
)

// Templates lists the sandbox templates (host and image templates).
func (c *Client) Templates(ctx context.Context) ([]api.Template, error) {
	var out api.TemplateList
	if err := c.Do(ctx, http.MethodGet, "/v1/templates", nil, &out); err != nil {
		return nil, err
	}
	return out.Templates, nil
}

// Build is what runs on a new template before it is listed: shell
// commands (Run) the daemon runs in order as root of a build sandbox on it,
// whose writes become the template's top layer, and the host patterns
// (Egress: api.example.com, *.example.com, optionally :port) those steps
// may reach through the egress proxy; without any, they reach no host.
type Build struct {
	Run    []string
	Egress []string
	// Tier is the build sandbox's tier, "process" or "gvisor" ("": the
	// process tier where the node runs it, else gVisor).
	Tier string
}

// Steps is a Build of the steps run that reaches no host.
func Steps(run ...string) Build { return Build{Run: run} }

// query adds the build to a create request's query.
func (b Build) query(q url.Values) {
	if len(b.Run) > 0 {
		q["run"] = b.Run
	}
	if len(b.Egress) > 0 {
		q["egress"] = b.Egress
	}
	if b.Tier != "" {
		q.Set("tier", b.Tier)
	}
}

// CreateTemplate uploads an image archive as template name. source is
// "oci" (a docker save archive or an OCI image layout tar) or "tar" (one
// layer: a directory packed with TarDir); then b runs on it.
func (c *Client) CreateTemplate(ctx context.Context, name, source string, r io.Reader, b Build) (*api.Template, error) {
	q := url.Values{"name": {name}, "source": {source}}
	b.query(q)
	return c.createTemplate(ctx, q, r)
}

// createTemplate posts a template create with query q and body r.
func (c *Client) createTemplate(ctx context.Context, q url.Values, r io.Reader) (*api.Template, error) {
	resp, err := c.Raw(ctx, http.MethodPost, "/v1/templates?"+q.Encode(), r, "application/x-tar")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var t api.Template
	if err := decodeJSON(resp.Body, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// CreateTemplateFromDir packs the directory tree at dir (TarDir) and
// uploads it as a one-layer template (then runs b on it).
func (c *Client) CreateTemplateFromDir(ctx context.Context, name, dir string, b Build) (*api.Template, error) {
	if fi, err := os.Stat(dir); err != nil {
		return nil, err
	} else if !fi.IsDir() {
		return nil, &fs.PathError{Op: "template from dir", Path: dir, Err: fs.ErrInvalid}
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(TarDir(dir, pw)) }()
	defer pr.Close()
	return c.CreateTemplate(ctx, name, "tar", pr, b)
}

// CreateTemplateFromDebian has the daemon build a Debian root filesystem
// (mmdebstrap, from its apt mirror) of suite with packages as template name
// (then runs b on it).
func (c *Client) CreateTemplateFromDebian(ctx context.Context, name, suite string, packages []string, b Build) (*api.Template, error) {
	q := url.Values{"name": {name}, "source": {"debian"}, "suite": {suite}}
	b.query(q)
	if len(packages) > 0 {
		q.Set("packages", strings.Join(packages, ","))
	}
	return c.createTemplate(ctx, q, nil)
}

// DeleteTemplate deletes an image template (refused while sandboxes use it).
func (c *Client) DeleteTemplate(ctx context.Context, name string) error {
	return c.Do(ctx, http.MethodDelete, "/v1/templates/"+url.PathEscape(name), nil, nil)
}

// TarDir writes the tree at dir as a tar stream: names relative to dir,
// numeric owners, symlinks as links; sockets are skipped.
func TarDir(dir string, w io.Writer) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil || fi.Mode()&fs.ModeSocket != 0 {
			return err
		}
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		hdr.Name, hdr.Uname, hdr.Gname = filepath.ToSlash(rel), "", ""
		if fi.IsDir() && rel != "." {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}
