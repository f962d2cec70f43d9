// Package importer finds other devices' changeset files in the shared
// folder, validates them, and hands them to the merge engine in each
// device's sequence order, exactly once. (The directory is "import", a Go
// keyword, hence the package name.)
package importer
