package samtemplate

// RepoRoot is repoRoot for the external tests (package samtemplate_test).
var RepoRoot = repoRoot
