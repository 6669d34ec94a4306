//! Windows: keeping chatctl's own standard handles out of the chatd it autostarts.
//!
//! Rust's `Command::spawn` on Windows calls `CreateProcessW` with `bInheritHandles = TRUE`, so
//! the child gets every handle of chatctl that is marked inheritable, not just the three
//! `Stdio` handles it was given. chatctl's standard handles usually are (they were inherited
//! from the shell): a daemon started by `chatctl status | cat` kept the write end of the pipe
//! to `cat`, which then waited for the daemon to exit (found under wine, issue #16). Clearing
//! `HANDLE_FLAG_INHERIT` on them first keeps them in chatctl; the daemon still gets the null
//! handles `Stdio::null()` makes, and anything chatctl later starts with `Stdio::inherit()`
//! still gets a duplicate (std duplicates inherited handles as inheritable for the child).

use std::ffi::c_void;
use std::os::windows::io::AsRawHandle as _;

/// `HANDLE_FLAG_INHERIT` (winbase.h).
const HANDLE_FLAG_INHERIT: u32 = 0x0000_0001;

// Declaring a foreign function is unsafe by definition; the one call is below.
#[allow(unsafe_code)]
#[link(name = "kernel32")]
unsafe extern "system" {
    /// `BOOL SetHandleInformation(HANDLE hObject, DWORD dwMask, DWORD dwFlags)`.
    fn SetHandleInformation(handle: *mut c_void, mask: u32, flags: u32) -> i32;
}

/// Marks chatctl's stdin, stdout and stderr not inheritable. Best effort: a handle that is
/// absent, or that Windows refuses to change (an old console pseudo-handle), is left as it
/// is; the worst outcome is the old behaviour.
pub(super) fn keep_standard_handles() {
    let handles = [
        std::io::stdin().as_raw_handle(),
        std::io::stdout().as_raw_handle(),
        std::io::stderr().as_raw_handle(),
    ];
    for handle in handles {
        // No handle at all (a detached process) is null or INVALID_HANDLE_VALUE (-1).
        if handle.is_null() || handle as isize == -1 {
            continue;
        }
        // SAFETY: SetHandleInformation only reads its arguments and changes one flag of the
        // handle in the kernel; `handle` is one of this process's standard handles, owned by
        // std for the life of the process, so it cannot be closed or reused meanwhile. An
        // invalid handle makes it return FALSE, which is ignored (see above).
        #[allow(unsafe_code)]
        unsafe {
            SetHandleInformation(handle, HANDLE_FLAG_INHERIT, 0);
        }
    }
}
