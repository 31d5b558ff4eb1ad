use crate::helpers::*;

#[test]
fn code_flow_for_a_first_party_spa_issues_tokens() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let client = app.spa_client();
    let tokens = app.code_flow(&client, "alice", &[("scope", "profile notes:read")]);
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["scope"], "profile notes:read");
    assert!(tokens["refresh_token"].is_string());
    let claims = jwt_claims(tokens["access_token"].as_str().unwrap());
    assert_eq!(claims["iss"], app.issuer.as_str());
    assert_eq!(
        jwt_header(tokens["access_token"].as_str().unwrap())["typ"],
        "at+jwt"
    );
}
