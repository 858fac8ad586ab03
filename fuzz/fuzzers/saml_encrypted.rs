#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    authchain_fuzz::targets::saml_encrypted(data);
});
