#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    authchain_fuzz::targets::password_hash(data);
});
