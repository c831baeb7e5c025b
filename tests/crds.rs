//! crds/ is generated from the Rust types (`make crds`); this fails when it is stale.
//! `UPDATE_EXPECT=1` rewrites it.

use std::collections::BTreeSet;
use std::path::Path;

use pacer::api::Kind;
use pacer::api::schema::{crd, crd_file_name};
use pacer::api::yaml::to_yaml_string;

#[test]
fn crds_match_the_types() {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let mut stale = Vec::new();
    for kind in Kind::ALL {
        let path = directory.join(crd_file_name(*kind));
        let expected = to_yaml_string(&crd(*kind));
        if update {
            std::fs::write(&path, &expected).expect("write crd");
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(expected.as_str()) {
            stale.push(path.display().to_string());
        }
    }
    assert!(stale.is_empty(), "stale: {stale:?}; run `make crds` (or UPDATE_EXPECT=1 cargo test --test crds)");
    let present: BTreeSet<String> = std::fs::read_dir(&directory)
        .expect("read crds/")
        .filter_map(|entry| entry.ok().and_then(|entry| entry.file_name().to_str().map(str::to_string)))
        .collect();
    let wanted: BTreeSet<String> = Kind::ALL.iter().map(|kind| crd_file_name(*kind)).collect();
    assert_eq!(present, wanted, "crds/ holds exactly one file per kind");
}

#[test]
fn crd_documents_parse_back_and_name_their_kind() {
    for kind in Kind::ALL {
        let text = to_yaml_string(&crd(*kind));
        let documents = pacer::api::yaml::parse_documents(&text).expect("a crd is valid YAML");
        let document = &documents[0].value;
        assert_eq!(document["spec"]["names"]["kind"], kind.as_str());
        let schema = &document["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        assert_eq!(schema["properties"]["kind"]["const"], kind.as_str());
        assert!(jsonschema::validator_for(schema).is_ok(), "{kind}: the schema in crds/ compiles");
    }
}
