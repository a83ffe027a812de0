// Package codedigest computes the digest of a Lambda function's code: the
// one the extension compares, at start, with LAMBDARASP_CODE_SHA256, and
// that `lambdarasp digest` computes from the deployment directory or zip
// beforehand. Both go through this package, so they agree by construction.
//
// The digest is defined on a list of entries, one per regular file and
// per symbolic link in the tree (directories are not entries: a zip may
// or may not list them, so only what they hold counts, and an empty
// directory counts for nothing). Each entry is one line
//
//	<content> <kind> <path>\n
//
// where path is the entry's path relative to the root, with "/" between
// its elements; kind is "f" for a regular file, "x" for a regular file
// that anyone may execute (any of the mode bits 0111: the other
// permission bits depend on the umask and the unpacking tool, whether
// the file can run does not), "l" for a symbolic link, which is never
// followed; and content is the lowercase hex SHA-256 of the file's bytes,
// or of the link's target as it is written. The lines are sorted by path,
// byte by byte, and the digest is the lowercase hex SHA-256 of their
// concatenation: 64 characters.
//
// A path with a newline or a carriage return, a path that leaves the root
// (zip entries "../x" or "/x"), two zip entries with one path, and
// anything that is neither a file, a link nor a directory (a device, a
// socket, a pipe) are errors: they have no digest. So are trees over the
// bounds, MaxFiles entries and MaxBytes bytes of content (Lambda unpacks
// at most 250 MB of code): past either, the walk stops with ErrOverBound
// instead of reading on.
//
// Dir and Zip are safe for concurrent use; each reads its tree once.
package codedigest
