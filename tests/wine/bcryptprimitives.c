/*
 * TEST-ONLY stand-in for Windows' bcryptprimitives.dll, for running chatd's Windows binaries
 * under wine in CI (tests/wine/scenario.sh). Never ship it, never put it next to a binary
 * on a real Windows machine: Windows has the real DLL.
 *
 * Why: Rust's standard library (since 1.78) takes its randomness on Windows from
 * ProcessPrng in bcryptprimitives.dll (the RNG behind HashMap's keys and, through getrandom,
 * every key chatd makes). Wine 8.0, Debian 12's, has no such DLL, so every Rust program fails
 * to load there. This exports the one function with the documented signature,
 *     BOOL WINAPI ProcessPrng(PBYTE pbData, SIZE_T cbData);
 * and fills the buffer from RtlGenRandom (SystemFunction036 in advapi32.dll), which wine
 * implements by reading the host's /dev/urandom. ProcessPrng never fails (it returns TRUE
 * always, as documented); if RtlGenRandom ever refuses, this aborts the process rather than
 * hand back a buffer that is not random.
 *
 * Build: x86_64-w64-mingw32-gcc -shared -O2 -o bcryptprimitives.dll bcryptprimitives.c
 *        -ladvapi32
 */
#include <windows.h>
#include <stdlib.h>

/* RtlGenRandom's real name; advapi32 exports it, the SDK headers declare it only under
 * another name. */
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk)) {
            abort();
        }
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
