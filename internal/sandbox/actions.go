package sandbox

// Authorization actions on sandboxes, the same for every surface that
// reaches them (the /v1/sandboxes routes, env.sandbox, the run_code tool).
// The resource is Sandbox::"<id>" (the platform for create and list).
const (
	ActionCreate = "sandbox.create"
	ActionList   = "sandbox.list"
	ActionRead   = "sandbox.read"   // show, processes, download, list, stat
	ActionWrite  = "sandbox.write"  // upload, mkdir, remove files
	ActionExec   = "sandbox.exec"   // exec, signal
	ActionManage = "sandbox.manage" // extend, pause, resume
	ActionDelete = "sandbox.delete"
)
