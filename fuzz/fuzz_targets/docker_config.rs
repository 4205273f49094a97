//! A pull secret's `.dockerconfigjson` / `.dockercfg` is user input, matched against images.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use trading_agent_operator::digest::DockerConfig;
use trading_agent_operator::digest::credentials::{DOCKER_CFG, DOCKER_CONFIG_JSON};

fuzz_target!(|input: (&[u8], &str)| {
    let (raw, image) = input;
    let data = BTreeMap::from([
        (".dockerconfigjson".to_owned(), raw.to_vec()),
        (".dockercfg".to_owned(), raw.to_vec()),
    ]);
    for kind in [DOCKER_CONFIG_JSON, DOCKER_CFG] {
        if let Ok(config) = DockerConfig::from_secret(kind, &data) {
            let (registry, repository) = image.split_once('/').unwrap_or((image, ""));
            let _ = config.candidates(registry, repository);
        }
    }
});
