//! libnftables, loaded at run time: the library the `nft` command itself is a thin shell
//! around. A long-lived context skips what makes every `nft` run cost ~15 ms whatever the
//! change (process start, library initialisation, a fresh cache), so a one-element change
//! costs what its netlink transaction costs.
//!
//! Loaded with `dlopen` rather than linked so that building needs no `-dev` package and a
//! host without the library still runs (the caller falls back to the `nft` command).
//!
//! The only unsafe code in the workspace: calling a C library cannot be done without it.
//! It is confined to this module, each block says why it holds.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::sync::{Mutex, OnceLock};

use libloading::Library;

/// `NFT_CTX_OUTPUT_JSON` in nftables/libnftables.h.
const OUTPUT_JSON: c_uint = 1 << 4;
/// `NFT_CTX_DEFAULT`: a context with its own netlink socket.
const CTX_DEFAULT: u32 = 0;

type CtxNew = unsafe extern "C" fn(u32) -> *mut c_void;
type CtxFree = unsafe extern "C" fn(*mut c_void);
type CtxInt = unsafe extern "C" fn(*mut c_void) -> c_int;
type CtxGetBuffer = unsafe extern "C" fn(*mut c_void) -> *const c_char;
type CtxSetFlags = unsafe extern "C" fn(*mut c_void, c_uint);
type RunCmd = unsafe extern "C" fn(*mut c_void, *const c_char) -> c_int;

struct Api {
    ctx_new: CtxNew,
    ctx_free: CtxFree,
    buffer_output: CtxInt,
    buffer_error: CtxInt,
    get_output: CtxGetBuffer,
    get_error: CtxGetBuffer,
    set_output_flags: CtxSetFlags,
    run_cmd: RunCmd,
    /// Keeps the symbols above valid for the life of the process.
    _lib: Library,
}

/// libnftables keeps a little process-wide state (a one-time initialisation in
/// `nft_ctx_new`, an interface cache released after every command), so calls from
/// different contexts are serialised. Each call is short; nothing waits long.
static CALLS: Mutex<()> = Mutex::new(());

fn api() -> Result<&'static Api, String> {
    static API: OnceLock<Result<Api, String>> = OnceLock::new();
    API.get_or_init(load).as_ref().map_err(Clone::clone)
}

fn load() -> Result<Api, String> {
    // SAFETY: libnftables' initialisers only set up its own state.
    let lib = unsafe { Library::new("libnftables.so.1") }.map_err(|e| e.to_string())?;
    Ok(Api {
        ctx_new: symbol(&lib, b"nft_ctx_new\0")?,
        ctx_free: symbol(&lib, b"nft_ctx_free\0")?,
        buffer_output: symbol(&lib, b"nft_ctx_buffer_output\0")?,
        buffer_error: symbol(&lib, b"nft_ctx_buffer_error\0")?,
        get_output: symbol(&lib, b"nft_ctx_get_output_buffer\0")?,
        get_error: symbol(&lib, b"nft_ctx_get_error_buffer\0")?,
        set_output_flags: symbol(&lib, b"nft_ctx_output_set_flags\0")?,
        run_cmd: symbol(&lib, b"nft_run_cmd_from_buffer\0")?,
        _lib: lib,
    })
}

/// A function of the library, typed by the caller.
fn symbol<T: Copy>(lib: &Library, name: &[u8]) -> Result<T, String> {
    // SAFETY: each caller's `T` matches the prototype in nftables/libnftables.h (1.0.x).
    unsafe { lib.get::<T>(name) }
        .map(|f| *f)
        .map_err(|e| e.to_string())
}

/// One libnftables context. Its netlink socket belongs to the network namespace of the
/// thread that created it; it is used from one thread at a time (it is `Send`, not `Sync`).
pub struct Context {
    api: &'static Api,
    ctx: *mut c_void,
}

// SAFETY: a context is plain heap state plus a socket; libnftables does not tie it to the
// creating thread, and `&mut self` on every use keeps it to one thread at a time.
unsafe impl Send for Context {}

/// Bytes of script or output past which memory is handed back to the system afterwards.
/// (A staged transaction of 20,000 elements is ~0.9 MB.)
const BIG: usize = 1 << 18;

/// Output of one command: what it printed, or its error messages.
pub type Outcome = Result<String, String>;

impl Context {
    /// A new context with buffered output and errors; Err says why the library is unusable.
    pub fn new() -> Result<Self, String> {
        let api = api()?;
        let _serial = CALLS.lock().unwrap_or_else(|p| p.into_inner());
        // SAFETY: plain constructor; checked for NULL below.
        let ctx = unsafe { (api.ctx_new)(CTX_DEFAULT) };
        if ctx.is_null() {
            return Err("nft_ctx_new failed".into());
        }
        let context = Context { api, ctx };
        // SAFETY: ctx is a live context.
        let buffered = unsafe { (api.buffer_output)(ctx) == 0 && (api.buffer_error)(ctx) == 0 };
        if !buffered {
            return Err("libnftables could not buffer its output".into());
        }
        Ok(context)
    }

    /// Runs an nft script (what `nft -f` reads) as one transaction; `json` asks for
    /// listings as JSON (`nft -j`).
    pub fn run(&mut self, script: &str, json: bool) -> Outcome {
        let text =
            CString::new(script).map_err(|_| "the script contains a NUL byte".to_string())?;
        let _serial = CALLS.lock().unwrap_or_else(|p| p.into_inner());
        // SAFETY: ctx is live and used by this thread alone; the buffers returned are
        // owned by the context and copied before the next call on it.
        unsafe {
            (self.api.set_output_flags)(self.ctx, if json { OUTPUT_JSON } else { 0 });
            let rc = (self.api.run_cmd)(self.ctx, text.as_ptr());
            let output = take((self.api.get_output)(self.ctx));
            let errors = take((self.api.get_error)(self.ctx));
            if script.len() + output.len() > BIG {
                // libnftables parses a 10k-Service table into ~300 MB of small blocks and
                // frees them; without a trim the process keeps them resident for good.
                nix::libc::malloc_trim(0);
            }
            if rc == 0 {
                Ok(output)
            } else if errors.trim().is_empty() {
                Err(format!("libnftables returned {rc} without a message"))
            } else {
                Err(errors.trim().to_string())
            }
        }
    }
}

/// Copies a buffer libnftables returned (NULL reads as empty).
///
/// # Safety
/// `p` is NULL or a NUL-terminated string valid until the next call on its context.
unsafe fn take(p: *const c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        let _serial = CALLS.lock().unwrap_or_else(|p| p.into_inner());
        // SAFETY: ctx is live and not used again.
        unsafe { (self.api.ctx_free)(self.ctx) };
    }
}
