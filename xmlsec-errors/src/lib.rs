//! libxmlsec1's error reports as `tracing` events instead of lines on standard error.
//!
//! xmlsec reports every failure (a signature value that does not verify, a key
//! that does not load, ...) through one process-wide callback. Its default one,
//! and the one its OpenSSL backend installs in `xmlSecOpenSSLInit`, print a line
//! (`func=...:file=...:line=...:obj=...:subj=...:error=...`) to standard error
//! through libxml2's generic error function: anyone able to post bad signatures
//! could flood the host's standard error. [`route_to_tracing`] replaces that
//! callback with one that turns each report into one `debug` event with the target
//! [`TARGET`] and never writes to standard error.
//!
//! This crate holds the only `unsafe` code of authchain (which forbids it): two
//! calls into libxmlsec1 and the reading of the C strings handed to the callback.
//!
//! Order matters: `xmlSecOpenSSLInit` (run by samael the first time it needs
//! xmlsec) sets the callback to its own, so the callback is installed *after*
//! that initialisation, which [`route_to_tracing`] asks its caller to run.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

use std::ffi::{c_char, c_int};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;

/// The `tracing` target of the events: `authchain::saml::xmlsec`.
pub const TARGET: &str = "authchain::saml::xmlsec";

/// At most this many bytes of each string of a report are kept (xmlsec's own
/// messages are at most 1 KiB; names of functions and files are short).
pub const MAX_FIELD_BYTES: usize = 256;

/// `xmlSecErrorsCallback` of `xmlsec/errors.h`: file, line, func, errorObject,
/// errorSubject, reason, msg.
type ErrorsCallback = Option<
    unsafe extern "C" fn(
        *const c_char,
        c_int,
        *const c_char,
        *const c_char,
        *const c_char,
        c_int,
        *const c_char,
    ),
>;

#[link(name = "xmlsec1")]
unsafe extern "C" {
    /// Sets the process-wide error callback (a plain store of the pointer).
    fn xmlSecErrorsSetCallback(callback: ErrorsCallback);
    /// Turns the printing of `xmlSecErrorsDefaultCallback` on (non-zero) or off.
    fn xmlSecErrorsDefaultCallbackEnableOutput(enabled: c_int);
}

static ROUTE: Once = Once::new();

/// Routes xmlsec's error reports to `tracing` for the rest of the process; only
/// the first call does anything.
///
/// The first call switches off the output of xmlsec's default callback, runs
/// `initialise`, which must make xmlsec initialise its crypto backend if that
/// has not happened yet (whatever xmlsec reports meanwhile is dropped), and then
/// installs the callback that emits one `debug` event with the target [`TARGET`]
/// per report (fields `func`, `file`, `line`, `object`, `subject`, `reason`,
/// `msg`, each string cut at [`MAX_FIELD_BYTES`] and read as lossy UTF-8). A
/// panic in `initialise` is caught; the callback is installed anyway.
///
/// Whoever later sets another callback (a second xmlsec initialisation after a
/// shutdown) replaces this one; its default output stays off.
pub fn route_to_tracing(initialise: impl FnOnce()) {
    ROUTE.call_once(|| {
        // SAFETY: the function only stores `0` in a static int of libxmlsec1,
        // which its default callback reads; no pointer is involved.
        unsafe { xmlSecErrorsDefaultCallbackEnableOutput(0) };
        let _ = catch_unwind(AssertUnwindSafe(initialise));
        // SAFETY: `report` has exactly the C signature of `xmlSecErrorsCallback`
        // and lives for the whole process; xmlsec only stores the pointer and
        // calls it with the arguments described at `report`.
        unsafe { xmlSecErrorsSetCallback(Some(report)) };
    });
}

/// The installed callback: one `debug` event per report, nothing on stderr.
///
/// # Safety
///
/// Each pointer is NULL or points to a NUL-terminated string that stays valid
/// for the duration of the call (what xmlsec's `xmlSecError` passes).
unsafe extern "C" fn report(
    file: *const c_char,
    line: c_int,
    func: *const c_char,
    object: *const c_char,
    subject: *const c_char,
    reason: c_int,
    msg: *const c_char,
) {
    // Nothing may unwind into C: a panicking subscriber loses this one event.
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the contract of `report`, passed on to `bounded`.
        let (file, func, object, subject, msg) = unsafe {
            (
                bounded(file),
                bounded(func),
                bounded(object),
                bounded(subject),
                bounded(msg),
            )
        };
        tracing::debug!(
            target: TARGET,
            func = %func,
            file = %file,
            line,
            object = %object,
            subject = %subject,
            reason,
            msg = %msg,
            "xmlsec reported an error"
        );
    }));
}

/// The string at `ptr` (empty for NULL), at most [`MAX_FIELD_BYTES`] bytes of
/// it (then followed by `…`), invalid UTF-8 replaced.
///
/// # Safety
///
/// `ptr` is NULL or points to a NUL-terminated string valid for reads.
unsafe fn bounded(ptr: *const c_char) -> String {
    if ptr.is_null() {
        return String::new();
    }
    let mut len = 0;
    // SAFETY: the string is NUL-terminated and the loop stops at the first NUL,
    // so every byte read (indices up to and including that NUL) is inside it.
    while len < MAX_FIELD_BYTES && unsafe { *ptr.add(len) } != 0 {
        len += 1;
    }
    // SAFETY: the `len` bytes just read are non-NUL bytes of the string.
    let bytes = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) };
    let mut text = String::from_utf8_lossy(bytes).into_owned();
    // SAFETY: bytes 0..len are not NUL, so byte `len` is still inside the
    // string (its terminator at the latest).
    if len == MAX_FIELD_BYTES && unsafe { *ptr.add(len) } != 0 {
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::ErrorKind::Other)?
                .extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn captured(call: impl FnOnce()) -> String {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, call);
        let bytes = buffer.0.lock().expect("buffer").clone();
        String::from_utf8(bytes).expect("utf-8")
    }

    #[test]
    fn null_pointers_give_empty_fields() {
        // SAFETY: NULL is allowed for every string.
        let out = captured(|| unsafe {
            report(
                std::ptr::null(),
                0,
                std::ptr::null(),
                std::ptr::null(),
                std::ptr::null(),
                1,
                std::ptr::null(),
            )
        });
        assert!(out.contains(TARGET), "{out}");
        assert!(out.contains("xmlsec reported an error"), "{out}");
        assert_eq!(out.lines().count(), 1, "{out}");
    }

    #[test]
    fn long_and_non_utf8_strings_are_cut_and_replaced() {
        let mut long = vec![b'a'; 10_000];
        long.push(0);
        let bad = c"data \xff\xfe do not match";
        // SAFETY: both buffers are NUL-terminated and outlive the call.
        let out = captured(|| unsafe {
            report(
                c"xmldsig.c".as_ptr(),
                42,
                c"xmlSecOpenSSLEvpSignatureVerify".as_ptr(),
                long.as_ptr().cast(),
                std::ptr::null(),
                1,
                bad.as_ptr(),
            )
        });
        let cut = format!("{}…", "a".repeat(MAX_FIELD_BYTES));
        assert!(out.contains(&cut), "{out}");
        assert!(!out.contains(&"a".repeat(MAX_FIELD_BYTES + 1)), "{out}");
        assert!(out.contains("data \u{fffd}\u{fffd} do not match"), "{out}");
        assert!(out.contains("func=xmlSecOpenSSLEvpSignatureVerify"), "{out}");
        assert!(out.contains("line=42"), "{out}");
    }

    #[test]
    fn exactly_the_limit_is_not_marked_cut() {
        let mut exact = vec![b'b'; MAX_FIELD_BYTES];
        exact.push(0);
        // SAFETY: NUL-terminated, outlives the call.
        let text = unsafe { bounded(exact.as_ptr().cast()) };
        assert_eq!(text, "b".repeat(MAX_FIELD_BYTES));
    }
}
