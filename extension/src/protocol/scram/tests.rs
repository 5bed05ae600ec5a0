//! Unit tests of the SCRAM-SHA-256 server: RFC 7677's vector, a real client, and every way a
//! message can be malformed or wrong.

use super::*;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};

/// Runs a whole exchange between a postgres-protocol client and our server.
fn exchange(
    verifier: &ScramVerifier,
    client_password: &str,
    channel_binding: ChannelBinding,
) -> Result<(), ScramError> {
    let mut client = ScramSha256::new(client_password.as_bytes(), channel_binding);
    let mut server = ScramServer::new(verifier);
    let server_first = server.client_first("SCRAM-SHA-256", client.message())?;
    client
        .update(&server_first)
        .expect("client accepts server-first");
    let server_final = server.client_final(client.message())?;
    client
        .finish(&server_final)
        .expect("client accepts server-final");
    Ok(())
}

/// Gets a server to the point where it expects client-final, with a fixed client nonce.
fn after_first<'a>(verifier: &'a ScramVerifier, client_first: &[u8]) -> ScramServer<'a> {
    let mut server = ScramServer::with_server_nonce(verifier, b"SERVERNONCE".to_vec());
    server.client_first("SCRAM-SHA-256", client_first).unwrap();
    server
}

fn protocol_error(result: Result<Vec<u8>, ScramError>) {
    assert!(
        matches!(result, Err(ScramError::Protocol(_))),
        "expected a protocol error, got {result:?}"
    );
}

#[test]
fn full_exchange_with_postgres_protocol_client() {
    let verifier = ScramVerifier::new("correct horse battery staple");
    exchange(
        &verifier,
        "correct horse battery staple",
        ChannelBinding::unsupported(),
    )
    .unwrap();
    let verifier = ScramVerifier::with_salt("s3cret", b"0123456789abcdef", 4096);
    exchange(&verifier, "s3cret", ChannelBinding::unsupported()).unwrap();
    let verifier = ScramVerifier::new("");
    exchange(&verifier, "", ChannelBinding::unsupported()).unwrap();
}

#[test]
fn wrong_password_is_rejected() {
    let verifier = ScramVerifier::new("right");
    let err = exchange(&verifier, "wrong", ChannelBinding::unsupported()).unwrap_err();
    assert!(matches!(err, ScramError::WrongPassword), "{err:?}");
    assert_eq!(err.to_string(), "password authentication failed");
}

#[test]
fn exchange_ends_after_failure_or_success() {
    let verifier = ScramVerifier::new("right");
    let mut client = ScramSha256::new(b"wrong", ChannelBinding::unsupported());
    let mut server = ScramServer::new(&verifier);
    let server_first = server
        .client_first("SCRAM-SHA-256", client.message())
        .unwrap();
    client.update(&server_first).unwrap();
    let last = client.message().to_vec();
    assert!(matches!(
        server.client_final(&last),
        Err(ScramError::WrongPassword)
    ));
    // No second guess on the same exchange.
    protocol_error(server.client_final(&last));
    protocol_error(server.client_first("SCRAM-SHA-256", b"n,,n=,r=abc"));
    assert_eq!(
        format!("{server:?}"),
        "ScramServer { state: \"finished\", .. }"
    );

    let mut client = ScramSha256::new(b"right", ChannelBinding::unsupported());
    let mut server = ScramServer::new(&verifier);
    let server_first = server
        .client_first("SCRAM-SHA-256", client.message())
        .unwrap();
    protocol_error(server.client_first("SCRAM-SHA-256", client.message()));
    client.update(&server_first).unwrap();
    // client_first twice ended the exchange, even though this proof is right.
    protocol_error(server.client_final(client.message()));
}

#[test]
fn sasl_prep_matches_postgres_clients() {
    // U+2168 ROMAN NUMERAL NINE becomes "IX" under NFKC, U+00AD SOFT HYPHEN is mapped to
    // nothing, U+00A0 NO-BREAK SPACE becomes a space.
    let verifier = ScramVerifier::new("\u{2168}-p\u{e4}ss\u{ad}word\u{a0}x");
    assert_eq!(verifier.iterations, 4096);
    assert_eq!(verifier.salt.len(), 16);
    for password in ["\u{2168}-p\u{e4}ss\u{ad}word\u{a0}x", "IX-p\u{e4}ssword x"] {
        exchange(&verifier, password, ChannelBinding::unsupported()).unwrap();
    }
    let err = exchange(&verifier, "IX-passwordx", ChannelBinding::unsupported()).unwrap_err();
    assert!(matches!(err, ScramError::WrongPassword));
    // A control character makes SASLprep fail: both sides then use the raw bytes.
    let verifier = ScramVerifier::new("tab\there");
    exchange(&verifier, "tab\there", ChannelBinding::unsupported()).unwrap();
}

#[test]
fn our_hi_agrees_with_postgres_protocol_secret() {
    let secret = postgres_protocol::password::scram_sha_256(b"agreement");
    let theirs = parse_pg_secret(&secret).expect("postgres-protocol secret format");
    let ours = ScramVerifier::with_salt("agreement", &theirs.salt, theirs.iterations);
    assert_eq!(theirs.iterations, 4096);
    assert!(ours.stored_key == theirs.stored_key);
    assert!(ours.server_key == theirs.server_key);
}

#[test]
fn random_salts_and_nonces() {
    let a = ScramVerifier::new("same");
    let b = ScramVerifier::new("same");
    assert_ne!(a.salt, b.salt);
    assert!(a.stored_key != b.stored_key);
    let s1 = ScramServer::new(&a);
    let s2 = ScramServer::new(&a);
    assert_eq!(s1.server_nonce.len(), 24);
    assert!(s1.server_nonce.iter().copied().all(is_printable));
    assert_ne!(s1.server_nonce, s2.server_nonce);
}

#[test]
fn zero_iterations_is_treated_as_one() {
    let zero = ScramVerifier::with_salt("pw", b"salt", 0);
    let one = ScramVerifier::with_salt("pw", b"salt", 1);
    assert_eq!(zero.iterations, 1);
    assert!(zero.stored_key == one.stored_key);
    exchange(&zero, "pw", ChannelBinding::unsupported()).unwrap();
}

#[test]
fn channel_binding_request_is_rejected() {
    let verifier = ScramVerifier::new("pw");
    let client = ScramSha256::new(b"pw", ChannelBinding::tls_server_end_point(vec![1, 2, 3]));
    assert!(client.message().starts_with(b"p=tls-server-end-point,,"));
    let mut server = ScramServer::new(&verifier);
    protocol_error(server.client_first("SCRAM-SHA-256", client.message()));
    let mut server = ScramServer::new(&verifier);
    protocol_error(server.client_first("SCRAM-SHA-256", b"p=tls-server-end-point,,n=,r=abcdef"));
}

#[test]
fn client_that_could_not_bind_is_accepted() {
    // "y,,": the client supports channel binding but thinks we do not.
    let verifier = ScramVerifier::new("pw");
    let client = ScramSha256::new(b"pw", ChannelBinding::unrequested());
    assert!(client.message().starts_with(b"y,,"));
    exchange(&verifier, "pw", ChannelBinding::unrequested()).unwrap();
}

#[test]
fn channel_binding_data_must_match_the_first_message() {
    let verifier = ScramVerifier::new("pw");
    let mut server = after_first(&verifier, b"n,,n=,r=abc");
    protocol_error(server.client_final(b"c=eSws,r=abcSERVERNONCE,p=AAAA"));
    let mut server = after_first(&verifier, b"y,,n=,r=abc");
    protocol_error(server.client_final(b"c=biws,r=abcSERVERNONCE,p=AAAA"));
    let mut server = after_first(&verifier, b"n,,n=,r=abc");
    protocol_error(
        server.client_final(b"c=cD10bHMtc2VydmVyLWVuZC1wb2ludCws,r=abcSERVERNONCE,p=AAAA"),
    );
}

#[test]
fn wrong_mechanism_is_rejected() {
    let verifier = ScramVerifier::new("pw");
    for mechanism in ["SCRAM-SHA-256-PLUS", "scram-sha-256", "PLAIN", ""] {
        let mut server = ScramServer::new(&verifier);
        let err = server
            .client_first(mechanism, b"n,,n=,r=abcdef")
            .unwrap_err();
        match err {
            ScramError::UnsupportedMechanism(m) => assert_eq!(m, mechanism),
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn malformed_client_first_is_rejected() {
    let verifier = ScramVerifier::new("pw");
    let cases: &[&[u8]] = &[
        b"",
        b"n",
        b"n,",
        b"x,,n=,r=abc",
        b"nn,n=,r=abc",
        b"n,a=admin,n=,r=abc",  // authorization identity
        b"n,,m=ext,n=,r=abc",   // mandatory extension
        b"n,,n=user",           // missing r=
        b"n,,n=user,",          // missing r=
        b"n,,r=abc",            // missing n=
        b"n,,n=user,r=",        // empty nonce
        b"n,,n=user,r=ab\x7fc", // non-printable nonce
        b"n,,n=user,r=ab\xffc", // non-ASCII nonce
        b"n,,n=us\0er,r=abc",   // NUL
        b"n,,n=user,r=abc,1=x", // bad extension name
        b"n,,n=user,r=abc,xyz", // extension without '='
        b"\xff\xfe\xfd",
    ];
    for case in cases {
        let mut server = ScramServer::new(&verifier);
        let result = server.client_first("SCRAM-SHA-256", case);
        assert!(
            matches!(result, Err(ScramError::Protocol(_))),
            "{:?} gave {result:?}",
            String::from_utf8_lossy(case)
        );
    }
    // Extensions and any user name (ignored, may be empty) are fine.
    for case in [
        &b"n,,n=,r=abc"[..],
        b"n,,n=someone else,r=abc,x=ext",
        b"y,,n=\xff,r=abc",
    ] {
        let mut server = ScramServer::new(&verifier);
        server.client_first("SCRAM-SHA-256", case).unwrap();
    }
}

#[test]
fn malformed_client_final_is_rejected() {
    let verifier = ScramVerifier::new("pw");
    let good_proof = STANDARD.encode([0u8; 32]);
    let cases = [
        String::new(),
        "c=biws".to_owned(),
        "c=biws,r=abcSERVERNONCE".to_owned(),
        "c=biws,r=abcSERVERNONCE,".to_owned(),
        "r=abcSERVERNONCE,c=biws,p=AAAA".to_owned(),
        "c=biws,r=abcSERVERNONCE,p=not base64!".to_owned(), // bad base64
        "c=biws,r=abcSERVERNONCE,p=AAAA".to_owned(),        // too short
        format!("c=biws,r=abcSERVERNONCE,p={good_proof}AAAA"), // too long
        format!("c=biws,r=abcSERVERNONCE,p={good_proof},x=1"), // garbage after proof
        format!("c=biws,r=xyzSERVERNONCE,p={good_proof}"),  // not the client nonce
        format!("c=biws,r=SERVERNONCE,p={good_proof}"),     // no client nonce
        format!("c=biws,r=abc,p={good_proof}"),             // no server nonce
        format!("c=biws,r=abcSERVERNONCEx,p={good_proof}"), // extra
        format!("c=biws,r=abSERVERNONCE,p={good_proof}"),   // truncated client nonce
        format!("c=biws,r=abcSERVERNONCE\0,p={good_proof}"),
    ];
    for case in &cases {
        let mut server = after_first(&verifier, b"n,,n=,r=abc");
        let result = server.client_final(case.as_bytes());
        assert!(
            matches!(result, Err(ScramError::Protocol(_))),
            "{case:?} gave {result:?}"
        );
    }
    // Well-formed with an extension before the proof: only the proof is wrong.
    let mut server = after_first(&verifier, b"n,,n=,r=abc");
    let result =
        server.client_final(format!("c=biws,r=abcSERVERNONCE,x=ext,p={good_proof}").as_bytes());
    assert!(
        matches!(result, Err(ScramError::WrongPassword)),
        "{result:?}"
    );
}

#[test]
fn client_final_before_client_first_is_rejected() {
    let verifier = ScramVerifier::new("pw");
    let mut server = ScramServer::new(&verifier);
    protocol_error(server.client_final(b"c=biws,r=abc,p=AAAA"));
}

#[test]
fn truncated_and_mutated_messages_never_panic() {
    // A fixed server nonce, so that only the mutation can make client-final fail.
    let fixed = |verifier| ScramServer::with_server_nonce(verifier, b"SERVERNONCE".to_vec());
    let verifier = ScramVerifier::new("pw");
    let mut client = ScramSha256::new(b"pw", ChannelBinding::unsupported());
    let first = client.message().to_vec();
    let mut server = fixed(&verifier);
    let server_first = server.client_first("SCRAM-SHA-256", &first).unwrap();
    client.update(&server_first).unwrap();
    let last = client.message().to_vec();
    fixed(&verifier)
        .client_first("SCRAM-SHA-256", &first)
        .unwrap();
    after_first(&verifier, &first).client_final(&last).unwrap();
    for n in 0..first.len() {
        let _ = fixed(&verifier).client_first("SCRAM-SHA-256", &first[..n]);
    }
    for n in 0..last.len() {
        assert!(after_first(&verifier, &first)
            .client_final(&last[..n])
            .is_err());
        for byte in [b',', b'=', b'A', 0, 0xff] {
            let mut mutated = last.clone();
            mutated[n] = byte;
            if mutated != last {
                let result = after_first(&verifier, &first).client_final(&mutated);
                assert!(result.is_err(), "{:?}", String::from_utf8_lossy(&mutated));
            }
        }
    }
}

#[test]
fn rfc7677_test_vector() {
    let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
    let verifier = ScramVerifier::with_salt("pencil", &salt, 4096);
    let mut server =
        ScramServer::with_server_nonce(&verifier, b"%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".to_vec());
    let server_first = server
        .client_first("SCRAM-SHA-256", b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
        .unwrap();
    assert_eq!(
        server_first,
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
          s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    );
    let server_final = server
        .client_final(
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
              p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        )
        .unwrap();
    assert_eq!(
        server_final,
        b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    );
}

#[test]
fn debug_output_has_no_key_material() {
    let verifier = ScramVerifier::with_salt("pencil", b"salt", 4096);
    let debug = format!("{verifier:?}");
    assert_eq!(debug, "ScramVerifier { iterations: 4096, .. }");
    let pretty = format!("{verifier:#?}");
    for key in [verifier.stored_key, verifier.server_key] {
        for rendering in [
            STANDARD.encode(key),
            format!("{key:?}"),
            format!("{}", key[0]),
        ] {
            if rendering.len() > 3 {
                assert!(!debug.contains(&rendering) && !pretty.contains(&rendering));
            }
        }
    }
    assert!(!debug.contains("pencil") && !pretty.contains("pencil"));
    let server = ScramServer::with_server_nonce(&verifier, b"NONCE".to_vec());
    let debug = format!("{server:?}");
    assert_eq!(debug, "ScramServer { state: \"initial\", .. }");
}
