#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    authchain_fuzz::targets::key_login(data);
});
