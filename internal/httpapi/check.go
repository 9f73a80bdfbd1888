package httpapi

import (
	"fmt"
	"strings"
)

// CheckOpenAPI reports routes missing from doc (an OpenAPI document built by
// OpenAPI) or documented without a summary. Tests call it on the daemon's
// real router so an undocumented route fails the build.
func CheckOpenAPI(rt *Router, doc map[string]any) error {
	paths, _ := doc["paths"].(map[string]any)
	var missing []string
	for _, r := range rt.Routes() {
		if r.Summary == "" {
			missing = append(missing, r.Method+" "+r.Path+" (no summary)")
		}
		p := pathParam.ReplaceAllString(r.Path, "{$1}")
		item, _ := paths[p].(map[string]any)
		m := strings.ToLower(r.Method)
		if m == "" {
			m = "get"
		}
		if item == nil || item[m] == nil {
			missing = append(missing, r.Method+" "+r.Path)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("routes missing from the OpenAPI document: %s", strings.Join(missing, ", "))
	}
	return nil
}
