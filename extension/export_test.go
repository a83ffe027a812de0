package extension

// Helpers of the package's own tests that its black-box tests (package
// extension_test, the real binaries under the emulator) use too.

type SyncBuffer = syncBuffer

var FreeUDP = freeUDP
