// libFuzzer's driver (compiler-rt, linked by -sanitize=fuzzer): runs `callback` on generated
// inputs with the flags in argv. Called from Swift's `main`, since SwiftPM gives every executable
// its own entry point and libFuzzer's `main` could not be used.
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
