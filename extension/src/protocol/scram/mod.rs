//! Server side of SCRAM-SHA-256 authentication (RFC 5802 / RFC 7677), as PostgreSQL implements
//! it in `src/backend/libpq/auth-scram.c`. pgwarm uses it to check the password a driver presents
//! (`PGWARM_CLIENT_PASSWORD`) without the password ever crossing the wire: the client proves it
//! knows the password, and the server proves it knows the verifier. Only the plain
//! `SCRAM-SHA-256` mechanism is supported (no channel binding, so no `-PLUS`): a client-first
//! message with a gs2 header of `n,,` or `y,,` is accepted, `p=...` is rejected, and the user name
//! in `n=` is ignored, exactly as PostgreSQL does (the startup packet carries the real user name).
//! The verifier is computed once at start-up, so an exchange costs the server only two HMACs and
//! one hash: a client cannot make pgwarm spend PBKDF2 work. Neither the password nor the keys
//! ever reach a log, a `Debug` output or an error: errors carry only static descriptions.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::digest::CtOutput;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// The only mechanism we advertise in AuthenticationSASL and accept in SASLInitialResponse.
const MECHANISM: &str = "SCRAM-SHA-256";
/// PostgreSQL's default `scram_iterations`.
const DEFAULT_ITERATIONS: u32 = 4096;
/// PostgreSQL's `SCRAM_DEFAULT_SALT_LEN`.
const SALT_LEN: usize = 16;
/// PostgreSQL's `SCRAM_RAW_NONCE_LEN`; base64-encoded it gives a 24-character nonce.
const SERVER_NONCE_LEN: usize = 18;
/// Output size of SHA-256, hence of every key, signature and proof.
const KEY_LEN: usize = 32;

/// A password verifier: what PostgreSQL stores in `pg_authid` (salt, iteration count, StoredKey,
/// ServerKey). It is built once from the plain password so that the password itself need not be
/// kept around, and so that each authentication exchange is cheap.
pub(crate) struct ScramVerifier {
    salt: Vec<u8>,
    iterations: u32,
    stored_key: [u8; KEY_LEN],
    server_key: [u8; KEY_LEN],
}

impl ScramVerifier {
    /// Builds a verifier with a random 16-byte salt and 4096 iterations, PostgreSQL's defaults.
    ///
    /// The password is normalised with SASLprep (RFC 4013) the way PostgreSQL and its clients do,
    /// falling back to the raw bytes when SASLprep rejects it, so that every driver computes the
    /// same salted password as we do. For an ASCII password SASLprep is always the identity (or
    /// rejects it, e.g. for control characters, and then the raw bytes are used), so we hash the
    /// bytes directly. A non-ASCII password is delegated to `postgres_protocol`, which runs the
    /// real SASLprep (the `stringprep` crate is only a transitive dependency of ours) and returns
    /// the verifier in PostgreSQL's text form, which we parse and drop at once.
    pub(crate) fn new(password: &str) -> ScramVerifier {
        if !password.is_ascii() {
            let secret = postgres_protocol::password::scram_sha_256(password.as_bytes());
            if let Some(verifier) = parse_pg_secret(&secret) {
                return verifier;
            }
            // Unreachable with postgres-protocol 0.6 (a unit test pins the format); hashing the
            // raw bytes is still right for any password that SASLprep leaves unchanged.
        }
        let mut salt = [0u8; SALT_LEN];
        rand::fill(&mut salt[..]);
        ScramVerifier::with_salt(password, &salt, DEFAULT_ITERATIONS)
    }

    /// Builds a verifier with a caller-chosen salt and iteration count, so that tests are
    /// deterministic (e.g. the RFC 7677 test vector). The password bytes are used as they are,
    /// without SASLprep: identical to [`ScramVerifier::new`] for ASCII passwords and for
    /// non-ASCII passwords already in SASLprep form. An iteration count of 0 is treated as 1,
    /// since clients such as libpq reject `i=0`.
    pub(crate) fn with_salt(password: &str, salt: &[u8], iterations: u32) -> ScramVerifier {
        let iterations = iterations.max(1);
        let salted_password = hi(password.as_bytes(), salt, iterations);
        let client_key = hmac_sha256(&salted_password, &[b"Client Key"]);
        let stored_key: [u8; KEY_LEN] = Sha256::digest(client_key).into();
        let server_key = hmac_sha256(&salted_password, &[b"Server Key"]);
        ScramVerifier {
            salt: salt.to_vec(),
            iterations,
            stored_key,
            server_key,
        }
    }
}

/// Prints only the iteration count, so that a verifier logged by accident leaks no key material.
impl fmt::Debug for ScramVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramVerifier")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// Where an exchange stands; anything but the expected message in order ends it.
enum State {
    /// Waiting for the client-first-message.
    Initial,
    /// server-first-message sent; waiting for the client-final-message.
    FirstSent {
        /// gs2 channel-binding flag the client sent: `b'n'` or `b'y'`.
        cbind_flag: u8,
        /// The client's part of the nonce.
        client_nonce: Vec<u8>,
        /// client-first-message-bare, the first part of AuthMessage.
        client_first_bare: Vec<u8>,
        /// server-first-message, the second part of AuthMessage.
        server_first: Vec<u8>,
    },
    /// Succeeded or failed: no further message is valid.
    Finished,
}

/// One SCRAM-SHA-256 exchange with one client, driven by the connection code: feed it the
/// SASLInitialResponse through [`ScramServer::client_first`], send back the result in
/// AuthenticationSASLContinue, feed it the SASLResponse through [`ScramServer::client_final`],
/// and send back the result in AuthenticationSASLFinal.
pub(crate) struct ScramServer<'a> {
    verifier: &'a ScramVerifier,
    server_nonce: Vec<u8>,
    state: State,
}

impl<'a> ScramServer<'a> {
    /// Starts an exchange against `verifier`, with a fresh random server nonce (18 random bytes,
    /// base64-encoded, like PostgreSQL) so that a recorded exchange cannot be replayed.
    pub(crate) fn new(verifier: &'a ScramVerifier) -> Self {
        let mut raw = [0u8; SERVER_NONCE_LEN];
        rand::fill(&mut raw[..]);
        Self::with_server_nonce(verifier, STANDARD.encode(raw).into_bytes())
    }

    /// Starts an exchange with a fixed server nonce, so that tests can replay published vectors.
    /// The nonce must be printable ASCII without `,`.
    fn with_server_nonce(verifier: &'a ScramVerifier, server_nonce: Vec<u8>) -> Self {
        ScramServer {
            verifier,
            server_nonce,
            state: State::Initial,
        }
    }

    /// Takes the mechanism name and the client-first-message from SASLInitialResponse and returns
    /// the server-first-message (`r=...,s=...,i=...`) to send in AuthenticationSASLContinue.
    ///
    /// Fails if the mechanism is not `SCRAM-SHA-256`, if the message is malformed, if the client
    /// requests channel binding (`p=`) or an authorization identity, or if called twice. Any
    /// error ends the exchange.
    pub(crate) fn client_first(
        &mut self,
        mechanism: &str,
        message: &[u8],
    ) -> Result<Vec<u8>, ScramError> {
        let state = std::mem::replace(&mut self.state, State::Finished);
        if !matches!(state, State::Initial) {
            return Err(ScramError::Protocol("client-first-message received twice"));
        }
        if mechanism != MECHANISM {
            return Err(ScramError::UnsupportedMechanism(mechanism.to_owned()));
        }
        let first = parse_client_first(message)?;

        let mut server_first = Vec::with_capacity(96);
        server_first.extend_from_slice(b"r=");
        server_first.extend_from_slice(first.client_nonce);
        server_first.extend_from_slice(&self.server_nonce);
        server_first.extend_from_slice(b",s=");
        server_first.extend_from_slice(STANDARD.encode(&self.verifier.salt).as_bytes());
        server_first.extend_from_slice(format!(",i={}", self.verifier.iterations).as_bytes());

        self.state = State::FirstSent {
            cbind_flag: first.cbind_flag,
            client_nonce: first.client_nonce.to_vec(),
            client_first_bare: first.bare.to_vec(),
            server_first: server_first.clone(),
        };
        Ok(server_first)
    }

    /// Takes the client-final-message from SASLResponse and, if the client's proof is correct,
    /// returns the server-final-message (`v=...`) to send in AuthenticationSASLFinal, which proves
    /// to the client that we know the verifier too.
    ///
    /// A wrong proof gives [`ScramError::WrongPassword`]; a nonce mismatch, channel-binding data
    /// that does not match the client-first-message, a malformed message, or a call before
    /// [`ScramServer::client_first`] gives [`ScramError::Protocol`]. Either way the exchange ends.
    pub(crate) fn client_final(&mut self, message: &[u8]) -> Result<Vec<u8>, ScramError> {
        let (cbind_flag, client_nonce, client_first_bare, server_first) =
            match std::mem::replace(&mut self.state, State::Finished) {
                State::FirstSent {
                    cbind_flag,
                    client_nonce,
                    client_first_bare,
                    server_first,
                } => (cbind_flag, client_nonce, client_first_bare, server_first),
                State::Initial => {
                    return Err(ScramError::Protocol(
                        "client-final-message received before client-first-message",
                    ))
                }
                State::Finished => {
                    return Err(ScramError::Protocol(
                        "message received after the exchange ended",
                    ))
                }
            };

        let last = parse_client_final(message)?;

        // Without channel binding the c= attribute must be the base64 of the gs2 header the
        // client sent first ("n,," or "y,,"): PostgreSQL compares the encoded text.
        let cbind_ok = match cbind_flag {
            b'n' => last.channel_binding == b"biws",
            b'y' => last.channel_binding == b"eSws",
            _ => false,
        };
        if !cbind_ok {
            return Err(ScramError::Protocol(
                "unexpected channel-binding attribute in client-final-message",
            ));
        }

        let proof = STANDARD
            .decode(last.proof)
            .ok()
            .and_then(|p| <[u8; KEY_LEN]>::try_from(p).ok())
            .ok_or(ScramError::Protocol(
                "malformed proof in client-final-message",
            ))?;

        let nonce_ok = last.nonce.len() == client_nonce.len() + self.server_nonce.len()
            && last.nonce.starts_with(&client_nonce)
            && last.nonce.ends_with(&self.server_nonce);
        if !nonce_ok {
            return Err(ScramError::Protocol("nonce does not match"));
        }

        // AuthMessage = client-first-message-bare "," server-first-message ","
        //               client-final-message-without-proof
        let auth_message: [&[u8]; 5] = [
            &client_first_bare,
            b",",
            &server_first,
            b",",
            last.without_proof,
        ];

        // ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); the client knows the
        // password iff H(ClientKey) == StoredKey. Compared in constant time.
        let client_signature = hmac_sha256(&self.verifier.stored_key, &auth_message);
        let mut client_key = proof;
        for (k, s) in client_key.iter_mut().zip(client_signature) {
            *k ^= s;
        }
        let computed = CtOutput::<Sha256>::new(Sha256::digest(client_key));
        let expected = CtOutput::<Sha256>::new(self.verifier.stored_key.into());
        if computed != expected {
            return Err(ScramError::WrongPassword);
        }

        let server_signature = hmac_sha256(&self.verifier.server_key, &auth_message);
        let mut server_final = b"v=".to_vec();
        server_final.extend_from_slice(STANDARD.encode(server_signature).as_bytes());
        Ok(server_final)
    }
}

/// Shows only where the exchange stands, never nonces or key material.
impl fmt::Debug for ScramServer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Initial => "initial",
            State::FirstSent { .. } => "server-first sent",
            State::Finished => "finished",
        };
        f.debug_struct("ScramServer")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

/// Why an exchange failed, so that the connection code can send the client the right
/// ErrorResponse (PostgreSQL answers all three with SQLSTATE 28P01 or 08P01) and log the cause.
/// The messages are static or echo only the mechanism name, never secrets.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ScramError {
    /// The client picked a SASL mechanism we did not advertise (e.g. `SCRAM-SHA-256-PLUS`).
    #[error("unsupported SASL authentication mechanism {0:?}")]
    UnsupportedMechanism(String),
    /// The client broke the protocol: malformed message, channel binding requested, nonce
    /// mismatch, or a message out of order.
    #[error("malformed SCRAM message: {0}")]
    Protocol(&'static str),
    /// The client's proof is wrong: it does not know the password.
    #[error("password authentication failed")]
    WrongPassword,
}

/// The parts of a client-first-message we need.
struct ClientFirst<'m> {
    cbind_flag: u8,
    /// client-first-message-bare: everything after the gs2 header.
    bare: &'m [u8],
    client_nonce: &'m [u8],
}

/// Parses `gs2-header client-first-message-bare` like PostgreSQL's `read_client_first_message`.
fn parse_client_first(message: &[u8]) -> Result<ClientFirst<'_>, ScramError> {
    check_no_nul(message)?;
    let (cbind_flag, rest) = match message {
        [flag @ (b'n' | b'y'), b',', rest @ ..] => (*flag, rest),
        [b'n' | b'y', ..] => {
            return Err(ScramError::Protocol(
                "comma expected after the channel-binding flag",
            ))
        }
        [b'p', ..] => {
            return Err(ScramError::Protocol(
                "client requested channel binding, which is not supported",
            ))
        }
        _ => return Err(ScramError::Protocol("unexpected channel-binding flag")),
    };
    let bare = match rest {
        [b',', bare @ ..] => bare,
        [b'a', ..] => {
            return Err(ScramError::Protocol(
                "client uses an authorization identity, which is not supported",
            ))
        }
        _ => {
            return Err(ScramError::Protocol(
                "unexpected attribute in client-first-message",
            ))
        }
    };
    if bare.first() == Some(&b'm') {
        return Err(ScramError::Protocol(
            "client requires an unsupported SCRAM extension",
        ));
    }
    let mut input = bare;
    // The user name is ignored, like PostgreSQL: the startup packet already named the user.
    read_attribute(&mut input, b'n', "expected user name attribute \"n=\"")?;
    let client_nonce = read_attribute(&mut input, b'r', "expected nonce attribute \"r=\"")?;
    if client_nonce.is_empty() || !client_nonce.iter().copied().all(is_printable) {
        return Err(ScramError::Protocol("invalid characters in client nonce"));
    }
    // Optional extensions may follow; they are ignored.
    while !input.is_empty() {
        read_any_attribute(&mut input)?;
    }
    Ok(ClientFirst {
        cbind_flag,
        bare,
        client_nonce,
    })
}

/// The parts of a client-final-message we need.
struct ClientFinal<'m> {
    /// Value of `c=`, still base64-encoded.
    channel_binding: &'m [u8],
    nonce: &'m [u8],
    /// Value of `p=`, still base64-encoded.
    proof: &'m [u8],
    /// client-final-message-without-proof, the last part of AuthMessage.
    without_proof: &'m [u8],
}

/// Parses `c=...,r=...[,ext...],p=...` like PostgreSQL's `read_client_final_message`.
fn parse_client_final(message: &[u8]) -> Result<ClientFinal<'_>, ScramError> {
    check_no_nul(message)?;
    let mut input = message;
    let channel_binding = read_attribute(
        &mut input,
        b'c',
        "expected channel-binding attribute \"c=\"",
    )?;
    let nonce = read_attribute(&mut input, b'r', "expected nonce attribute \"r=\"")?;
    // Skip optional extensions until the proof, which must come last.
    let (proof, without_proof) = loop {
        // Offset of the attribute; the byte before it is the ',' that ended the previous one.
        let start = message.len() - input.len();
        let (attr, value) = read_any_attribute(&mut input)?;
        if attr == b'p' {
            let signed = message.get(..start.saturating_sub(1)).unwrap_or_default();
            break (value, signed);
        }
    };
    if !input.is_empty() {
        return Err(ScramError::Protocol(
            "garbage at the end of client-final-message",
        ));
    }
    Ok(ClientFinal {
        channel_binding,
        nonce,
        proof,
        without_proof,
    })
}

/// PostgreSQL reads SCRAM messages as C strings and rejects embedded NULs; so do we.
fn check_no_nul(message: &[u8]) -> Result<(), ScramError> {
    if message.contains(&0) {
        return Err(ScramError::Protocol("message contains a NUL byte"));
    }
    Ok(())
}

/// Reads `attr=value` up to the next `,` (consumed) or the end of `input`.
fn read_attribute<'m>(
    input: &mut &'m [u8],
    attr: u8,
    error: &'static str,
) -> Result<&'m [u8], ScramError> {
    match *input {
        [a, b'=', rest @ ..] if *a == attr => Ok(take_value(input, rest)),
        _ => Err(ScramError::Protocol(error)),
    }
}

/// Reads any `x=value` attribute (`x` an ASCII letter), returning its name and value.
fn read_any_attribute<'m>(input: &mut &'m [u8]) -> Result<(u8, &'m [u8]), ScramError> {
    match *input {
        [a, b'=', rest @ ..] if a.is_ascii_alphabetic() => {
            let attr = *a;
            Ok((attr, take_value(input, rest)))
        }
        [] => Err(ScramError::Protocol(
            "attribute expected, found end of message",
        )),
        _ => Err(ScramError::Protocol("attribute expected")),
    }
}

/// Splits `rest` at the first `,`, leaves what follows the comma in `input`, returns the value.
fn take_value<'m>(input: &mut &'m [u8], rest: &'m [u8]) -> &'m [u8] {
    match rest.iter().position(|&c| c == b',') {
        Some(i) => {
            let (value, comma_on) = rest.split_at(i);
            *input = comma_on.get(1..).unwrap_or_default();
            value
        }
        None => {
            *input = &[];
            rest
        }
    }
}

/// RFC 5802 `printable`: ASCII 0x21..=0x7E except `,`.
fn is_printable(c: u8) -> bool {
    matches!(c, 0x21..=0x2B | 0x2D..=0x7E)
}

/// HMAC-SHA-256 of the concatenation of `parts` under `key`.
fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; KEY_LEN] {
    #[allow(clippy::expect_used, reason = "HMAC takes a key of any length")]
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// RFC 5802 `Hi()`: PBKDF2-HMAC-SHA-256 with a single output block.
fn hi(password: &[u8], salt: &[u8], iterations: u32) -> [u8; KEY_LEN] {
    // Key the HMAC once and clone it: this halves the work per iteration.
    #[allow(clippy::expect_used, reason = "HMAC takes a key of any length")]
    let keyed = HmacSha256::new_from_slice(password).expect("HMAC accepts keys of any length");
    let mut mac = keyed.clone();
    mac.update(salt);
    mac.update(&1u32.to_be_bytes());
    let mut u: [u8; KEY_LEN] = mac.finalize().into_bytes().into();
    let mut result = u;
    for _ in 1..iterations {
        let mut mac = keyed.clone();
        mac.update(&u);
        u = mac.finalize().into_bytes().into();
        for (r, b) in result.iter_mut().zip(u) {
            *r ^= b;
        }
    }
    result
}

/// Parses a PostgreSQL SCRAM secret, `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`
/// (base64 fields), as produced by `postgres_protocol::password::scram_sha_256`.
fn parse_pg_secret(secret: &str) -> Option<ScramVerifier> {
    let rest = secret.strip_prefix("SCRAM-SHA-256$")?;
    let (params, keys) = rest.split_once('$')?;
    let (iterations, salt) = params.split_once(':')?;
    let (stored_key, server_key) = keys.split_once(':')?;
    let iterations = iterations.parse::<u32>().ok().filter(|&i| i > 0)?;
    let salt = STANDARD.decode(salt).ok()?;
    let stored_key = STANDARD.decode(stored_key).ok()?.try_into().ok()?;
    let server_key = STANDARD.decode(server_key).ok()?.try_into().ok()?;
    Some(ScramVerifier {
        salt,
        iterations,
        stored_key,
        server_key,
    })
}

#[cfg(test)]
mod tests;
