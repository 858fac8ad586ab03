#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    authchain_fuzz::targets::signed_header(data);
});
