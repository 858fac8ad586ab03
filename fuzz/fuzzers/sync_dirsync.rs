#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    authchain_fuzz::sync::dirsync_response(data);
});
