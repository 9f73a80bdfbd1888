package sandboxhttp

import (
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/sandbox/image"
)

// ActionTemplateManage creates and deletes image templates (Cedar: only
// administrators). Listing templates is open to every principal
// (sandbox.list).
const ActionTemplateManage = "template.manage"

// templateRoutes registers /v1/templates when the node has a template
// store.
func (h *Handler) templateRoutes(r *httpapi.Router) {
	st := h.cfg.Images
	if st == nil {
		return
	}
	add := func(rt httpapi.Route) {
		rt.Tag, rt.Handler = "templates", h.guard(rt.Handler)
		r.Handle(rt)
	}
	add(httpapi.Route{Method: "GET", Path: "/v1/templates", Action: ActionList, Response: api.TemplateList{},
		Summary: "List sandbox templates: the built-in host template and the image templates.",
		Handler: func(w http.ResponseWriter, r *http.Request) error {
			out := api.TemplateList{Templates: []api.Template{{Name: sandbox.TemplateHost, Source: "host"}}}
			for _, t := range st.List() {
				out.Templates = append(out.Templates, templateOut(t))
			}
			httpapi.WriteJSON(w, http.StatusOK, out)
			return nil
		}})
	add(httpapi.Route{Method: "POST", Path: "/v1/templates", Action: ActionTemplateManage, Status: http.StatusCreated,
		RequestContentType: "application/x-tar", Response: api.Template{},
		Query: []httpapi.QueryParam{
			{Name: "name", Required: true, Description: "the new template's name (a-z first, then a-z 0-9 -)"},
			{Name: "source", Required: true, Description: "oci: the body is a docker save archive or an OCI image layout tar; tar: the body is one layer (a directory packed as a tar); debian: no body, a Debian rootfs built with mmdebstrap"},
			{Name: "suite", Description: "source=debian: the Debian suite (from the node's apt sources)"},
			{Name: "packages", Description: "source=debian: comma-separated packages to include"},
			{Name: "run", Repeated: true, Description: "a build step (repeatable, in order): a shell command run as root of a build sandbox's user namespace on the new template; what the steps write becomes the template's top layer"},
			{Name: "tier", Description: "with run: the tier of the build sandbox, process or gvisor (default: process when this node runs it, else gvisor)"},
			{Name: "egress", Repeated: true, Description: "with run: a host pattern the build steps may reach through the egress proxy (repeatable; api.example.com, *.example.com, optionally :port); without any, the steps reach no host"},
		},
		Summary: "Create an image template from the uploaded archive (administrators). Layers are unpacked into a content-addressed read-only store; each sandbox of the template gets its own writable overlay.",
		Handler: func(w http.ResponseWriter, r *http.Request) error {
			q := r.URL.Query()
			name := q.Get("name")
			if err := image.CheckName(name); err != nil {
				return err
			}
			steps := q["run"]
			build, err := h.buildSpec(r, steps, q["egress"])
			if err != nil {
				return err
			}
			var t image.Template
			switch q.Get("source") {
			case "oci":
				t, err = st.FromOCIReader(r.Context(), name, r.Body)
			case "tar":
				t, err = st.FromLayerTar(r.Context(), name, r.Body)
			case "debian":
				var pkgs []string
				if p := q.Get("packages"); p != "" {
					pkgs = strings.Split(p, ",")
				}
				t, err = st.FromDebian(r.Context(), name, q.Get("suite"), pkgs)
			default:
				return api.FieldErrorf(api.KindValidation, "source", "source %q: want oci (a docker save or OCI layout archive), tar (one layer) or debian", q.Get("source"))
			}
			if err == nil && len(steps) > 0 {
				t, err = st.RunSteps(r.Context(), name, steps, image.BuildOptions{Sandboxes: h.m, Spec: build})
			}
			if err != nil {
				return templateProblem(err)
			}
			w.Header().Set("Location", "/v1/templates/"+name)
			httpapi.WriteJSON(w, http.StatusCreated, templateOut(t))
			return nil
		}})
	add(httpapi.Route{Method: "DELETE", Path: "/v1/templates/{template}", Action: ActionTemplateManage, Status: http.StatusNoContent,
		Summary: "Delete an image template and the layers no other template uses (refused while sandboxes use it).",
		Handler: func(w http.ResponseWriter, r *http.Request) error {
			if err := st.Delete(r.PathValue("template")); err != nil {
				return templateProblem(err)
			}
			w.WriteHeader(http.StatusNoContent)
			return nil
		}})
}

func templateOut(t image.Template) api.Template {
	return api.Template{Name: t.Name, Source: t.Source, Layers: slices.Clone(t.Layers), Bytes: t.Bytes, Created: t.Created}
}

// buildSpec validates a create request's build steps and the hosts they
// may reach (egress: the build sandbox's egress list, as for a sandbox
// create), and makes the spec of their build sandbox (the owner's labels
// and quota, as for a sandbox create) before anything is built.
func (h *Handler) buildSpec(r *http.Request, steps, egress []string) (sandbox.Spec, error) {
	tier := r.URL.Query().Get("tier")
	if len(steps) == 0 {
		if len(egress) > 0 {
			return sandbox.Spec{}, api.FieldErrorf(api.KindValidation, "egress", "egress is the hosts the build steps may reach: give build steps (run) or leave egress out")
		}
		if tier != "" {
			return sandbox.Spec{}, api.FieldErrorf(api.KindValidation, "tier", "tier is where the build steps run: give build steps (run) or leave tier out")
		}
		return sandbox.Spec{}, nil
	}
	if err := image.CheckSteps(steps); err != nil {
		return sandbox.Spec{}, err
	}
	if err := validation(checkEgress(egress, nil)); err != nil {
		return sandbox.Spec{}, err
	}
	switch tier {
	case "":
		tier = sandbox.TierProcess
		if _, ok := h.templatesOf(tier); !ok {
			tier = sandbox.TierGVisor
		}
	case sandbox.TierProcess, sandbox.TierGVisor:
	default:
		return sandbox.Spec{}, api.FieldErrorf(api.KindValidation, "tier", "tier %q: build steps run on the process or the gvisor tier", tier)
	}
	if _, ok := h.templatesOf(tier); !ok {
		return sandbox.Spec{}, api.FieldErrorf(api.KindValidation, "tier", "build steps run on the %s tier, which is not enabled on this node", tier)
	}
	spec := sandbox.Spec{Tier: tier}
	if len(egress) > 0 {
		// As on a sandbox create: the reserved label, then BeforeCreate.
		spec.Labels = map[string]string{sandbox.LabelEgress: strings.Join(egress, ",")}
	}
	if h.cfg.BeforeCreate != nil {
		if err := h.cfg.BeforeCreate(r, &spec); err != nil {
			return sandbox.Spec{}, err
		}
	}
	return spec, nil
}

// templateProblem maps the store's errors to problems.
func templateProblem(err error) error {
	var p *api.Problem
	var mbe *http.MaxBytesError
	var se *image.StepError
	switch {
	case errors.As(err, &se):
		return se.Problem()
	case errors.As(err, &p):
		return p
	case errors.As(err, &mbe):
		return api.Errorf(api.KindTooLarge, "the archive is larger than the request limit of %d bytes (max_body_bytes)", mbe.Limit)
	case errors.Is(err, image.ErrInvalid):
		return api.Errorf(api.KindInvalidImage, "%v", err)
	case errors.Is(err, image.ErrExists):
		return api.FieldErrorf(api.KindConflict, "name", "%v: delete it first or choose another name", err)
	case errors.Is(err, image.ErrInUse):
		return api.Errorf(api.KindConflict, "%v: delete those sandboxes first", err)
	case errors.Is(err, sandbox.ErrUnknownTemplate):
		return api.Errorf(api.KindNotFound, "%v", err)
	}
	return err
}

// templatesOf lists a tier's templates now (image templates come and go).
func (h *Handler) templatesOf(tier string) ([]string, bool) {
	for _, t := range h.cfg.Tiers {
		if t.Name() == tier {
			return t.Templates(), true
		}
	}
	return nil, false
}
