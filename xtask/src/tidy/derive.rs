//! Tidy check: every id Sett derives is derived in one module (`sett_core::derive`), so the
//! labels written to the ledger cannot drift apart between the places that need them.

use super::{lines_before_tests, product_code};

/// The one module that derives ids (UUID v5 of a parent id and a label): the ids it derives are
/// in the ledger, so their labels must not drift apart between the places that need them.
const DERIVE_HOME: &str = "crates/sett-core/src/derive.rs";

/// The lines of `code` (before its inline tests) that derive an id themselves: a call of
/// `ArtifactId::derived` / `ClaimId::derived` (its label often built with `format!`) or a UUID v5.
fn id_derivations(code: &str) -> Vec<String> {
    code.lines()
        .take(lines_before_tests(code))
        .filter(|l| !l.trim_start().starts_with("//"))
        .filter(|l| l.contains("::derived(") || l.contains("new_v5("))
        .map(|l| l.trim().to_owned())
        .collect()
}

#[test]
fn ids_are_derived_in_one_module() {
    let root = crate::project_root();
    let home = root.join(DERIVE_HOME);
    let home_code =
        std::fs::read_to_string(&home).unwrap_or_else(|e| panic!("{DERIVE_HOME}: {e}: move this check with it"));
    let derived = home_code.lines().take(lines_before_tests(&home_code)).filter(|l| l.starts_with("pub fn ")).count();
    assert!(derived >= 10, "found only {derived} derivations in {DERIVE_HOME}: the check looks in the wrong place");
    let mut bad = Vec::new();
    let mut checked = 0;
    for (p, code) in product_code() {
        let rel = p.strip_prefix(&root).unwrap_or(&p).to_string_lossy().replace('\\', "/");
        // Test modules kept in their own file (`mod tests;`) take fixed ids from `derived`.
        if rel == DERIVE_HOME || rel.ends_with("/tests.rs") || rel.contains("/tests/") {
            continue;
        }
        checked += 1;
        bad.extend(id_derivations(&code).into_iter().map(|l| format!("{rel}: {l}")));
    }
    assert!(checked > 50, "found only {checked} product source files");
    assert!(
        bad.is_empty(),
        "derive ids in {DERIVE_HOME} (a named function saying why the id is derived), not in place: {bad:#?}"
    );
}

#[test]
fn the_derivation_matcher_finds_calls_and_skips_tests() {
    assert_eq!(id_derivations(r#"let id = ArtifactId::derived(&c, &format!("output:{seq}"));"#).len(), 1);
    assert_eq!(id_derivations("Uuid::new_v5(&Uuid::NAMESPACE_OID, b)").len(), 1);
    assert!(id_derivations("sett_core::derive::grant_output(&c, 1)").is_empty());
    assert!(id_derivations("// ClaimId::derived(a, b)\n#[cfg(test)]\nClaimId::derived(&a, \"t\")").is_empty());
}
