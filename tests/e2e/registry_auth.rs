//! Registry authentication end to end: docker-registry in token mode (JWTs from a token
//! service the test runs, keys by openssl) and in htpasswd (basic) mode; isola pulls and pushes
//! with `--user` and with a docker-style auth.json, skopeo checks what isola pushed.

use isola_e2e::support::registry::{Auth, Registry};
use isola_e2e::support::token::{std_base64, TokenService, ISSUER, SERVICE};
use isola_e2e::Env;

fn auth_file(dir: &std::path::Path, registry: &str, user: &str, password: &str) -> String {
    let path = dir.join("auth.json");
    let auth = std_base64(format!("{user}:{password}").as_bytes());
    std::fs::write(
        &path,
        format!(r#"{{"auths": {{"{registry}": {{"auth": "{auth}"}}}}}}"#),
    )
    .unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn token_auth_follows_the_challenge_for_pull_and_push() {
    let env = Env::new();
    let tokens = TokenService::start("alice", "s3cret");
    let reg = Registry::start_with(Auth::Token {
        realm: tokens.realm(),
        service: SERVICE.into(),
        issuer: ISSUER.into(),
        cert: tokens.cert.clone(),
    });
    let name = reg.name("team/app:1");
    // No credentials: the token service refuses; one line naming it.
    let r = env.isola(&["push", "sample", &name]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(
        r.stderr.contains(&tokens.realm()) && r.stderr.contains("401"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
    // With them: a pull token first (HEAD), then the registry asks for push and gets it.
    let r = env.isola(&["push", "-u", "alice:s3cret", "sample", &name]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let scopes = tokens.scopes();
    // (The registry names the actions in either order.)
    assert!(
        scopes.iter().any(|s| {
            let actions = s.strip_prefix("repository:team/app:").unwrap_or("");
            let mut a: Vec<&str> = actions.split(',').collect();
            a.sort();
            a == ["pull", "push"]
        }),
        "{scopes:?}"
    );
    let digest = reg.digest("team/app:1", &["--creds", "alice:s3cret"]);
    assert!(r.stdout.ends_with(&format!(" {digest}\n")), "{}", r.stdout);
    // A wrong password: refused by the token service.
    let fresh = Env::empty();
    let r = fresh.isola(&["pull", "-u", "alice:wrong", &name]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(r.stderr.contains("401"), "{}", r.stderr);
    assert!(fresh.isola(&["images"]).stdout.lines().count() <= 1);
    // The right one from an auth.json: pull, and `run` pulling by itself.
    let dir = tempfile::tempdir().unwrap();
    let file = auth_file(
        dir.path(),
        &format!("127.0.0.1:{}", reg.port),
        "alice",
        "s3cret",
    );
    let vars = [("REGISTRY_AUTH_FILE", file.as_str())];
    let r = fresh.isola_with(&["pull", &name], &vars);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains(&digest));
    let scopes = tokens.scopes();
    assert_eq!(
        scopes.last().map(String::as_str),
        Some("repository:team/app:pull"),
        "a pull asks for pull only: {scopes:?}"
    );
    let r = fresh.isola(&["run", "--rm", &name, "echo", "authorised"]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "authorised\n"),
        "{}",
        r.stderr
    );
    let other = Env::empty();
    let r = other.isola_with(&["run", "--rm", &name, "echo", "auto"], &vars);
    assert_eq!((r.code, r.stdout.as_str()), (0, "auto\n"), "{}", r.stderr);
    fresh.assert_clean();
    other.assert_clean();
    env.assert_clean();
}

#[test]
fn basic_auth_with_user_or_auth_file() {
    let env = Env::new();
    let reg = Registry::start_with(Auth::Htpasswd {
        user: "bob".into(),
        password: "hunter2".into(),
    });
    let name = reg.name("private/app:2");
    let r = env.isola(&["push", "sample", &name]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(
        r.stderr.contains("wants a user and password"),
        "{}",
        r.stderr
    );
    let r = env.isola(&["push", "-u", "bob:hunter2", "sample", &name]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let digest = reg.digest("private/app:2", &["--creds", "bob:hunter2"]);
    let fresh = Env::empty();
    let r = fresh.isola(&["pull", "-u", "bob:nope", &name]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(r.stderr.contains("access denied"), "{}", r.stderr);
    let r = fresh.isola(&["pull", "-u", "bob", &name]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(r.stderr.contains("expected USER:PASSWORD"), "{}", r.stderr);
    let dir = tempfile::tempdir().unwrap();
    let file = auth_file(
        dir.path(),
        &format!("127.0.0.1:{}", reg.port),
        "bob",
        "hunter2",
    );
    let r = fresh.isola_with(&["pull", &name], &[("REGISTRY_AUTH_FILE", file.as_str())]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains(&digest));
    let r = fresh.isola(&["run", "--rm", &name, "echo", "basic"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "basic\n"), "{}", r.stderr);
    fresh.assert_clean();
    env.assert_clean();
}
