//! The configuration loader: any file text either loads into a configuration that passed
//! validation or is refused with one error naming a key.

use ringcast::config::Config;
use ringcast::fair_share::Cap;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        match Config::parse(Some(("fuzz.toml".into(), text)), Vec::new()) {
            Ok(config) => {
                let _ = (Cap::history(&config.server), Cap::cache(&config.server));
            }
            Err(e) => assert!(!e.to_string().contains('\n'), "an error of one line: {e}"),
        }
    });
}
