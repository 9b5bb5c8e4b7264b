package transport

import "syscall"

// errTooManyFiles is what accept returns when the process is out of file descriptors.
var errTooManyFiles = syscall.EMFILE
