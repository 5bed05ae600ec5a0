//! The untyped first packet of a connection: StartupMessage, SSLRequest, GSSENCRequest or
//! CancelRequest, told apart by the code after the length; and what a StartupMessage's
//! parameters mean: the session settings among them, including those of `options`.

use thiserror::Error;

/// PostgreSQL's cap on a startup packet (MAX_STARTUP_PACKET_LENGTH).
pub(crate) const MAX_STARTUP_LEN: usize = 10_000;

const CANCEL_REQUEST_CODE: u32 = 80_877_102;
const SSL_REQUEST_CODE: u32 = 80_877_103;
const GSSENC_REQUEST_CODE: u32 = 80_877_104;

/// What a client opened with.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum StartupPacket {
    Startup {
        /// Protocol minor version the client asked for (3.x).
        minor: u16,
        params: Vec<(String, String)>,
    },
    SslRequest,
    GssEncRequest,
    Cancel {
        pid: i32,
        secret: i32,
    },
}

#[derive(Debug, Error, PartialEq, Eq)]
pub(crate) enum StartupError {
    #[error("invalid length of startup packet ({0} bytes)")]
    BadLength(usize),
    #[error("unsupported frontend protocol {major}.{minor}: server supports 3.0 to 3.0")]
    UnsupportedProtocol { major: u16, minor: u16 },
    #[error("invalid startup packet layout: {0}")]
    Malformed(&'static str),
}

/// Checks the length word of a startup packet (which counts itself).
pub(crate) fn check_len(len: usize) -> Result<(), StartupError> {
    if (8..=MAX_STARTUP_LEN).contains(&len) {
        Ok(())
    } else {
        Err(StartupError::BadLength(len))
    }
}

/// Parses the packet body that follows the length word.
pub(crate) fn parse(body: &[u8]) -> Result<StartupPacket, StartupError> {
    let code = u32::from_be_bytes(
        body.get(..4)
            .ok_or(StartupError::Malformed("missing code"))?
            .try_into()
            .map_err(|_| StartupError::Malformed("missing code"))?,
    );
    let rest = body.get(4..).unwrap_or_default();
    match code {
        SSL_REQUEST_CODE if rest.is_empty() => Ok(StartupPacket::SslRequest),
        GSSENC_REQUEST_CODE if rest.is_empty() => Ok(StartupPacket::GssEncRequest),
        CANCEL_REQUEST_CODE => {
            // Protocol 3.2 allows longer secret keys; pgwarm hands out 4-byte keys only.
            let key: &[u8; 8] = rest
                .try_into()
                .map_err(|_| StartupError::Malformed("cancel request key length"))?;
            let (pid, secret) = key.split_at(4);
            let word = |b: &[u8]| b.try_into().map(i32::from_be_bytes);
            match (word(pid), word(secret)) {
                (Ok(pid), Ok(secret)) => Ok(StartupPacket::Cancel { pid, secret }),
                _ => Err(StartupError::Malformed("cancel request key length")),
            }
        }
        _ => {
            let major = (code >> 16) as u16;
            let minor = (code & 0xffff) as u16;
            if major != 3 {
                return Err(StartupError::UnsupportedProtocol { major, minor });
            }
            Ok(StartupPacket::Startup {
                minor,
                params: parse_params(rest)?,
            })
        }
    }
}

/// Name/value pairs as NUL-terminated strings, ended by an empty name.
fn parse_params(mut rest: &[u8]) -> Result<Vec<(String, String)>, StartupError> {
    let mut params = Vec::new();
    loop {
        let name = take_cstr(&mut rest)?;
        if name.is_empty() {
            break;
        }
        let value = take_cstr(&mut rest)?;
        params.push((name, value));
    }
    if !rest.is_empty() {
        return Err(StartupError::Malformed("bytes after the final terminator"));
    }
    Ok(params)
}

fn take_cstr(rest: &mut &[u8]) -> Result<String, StartupError> {
    let (bytes, after) =
        super::frontend::cstr(rest).ok_or(StartupError::Malformed("missing terminator"))?;
    let s = std::str::from_utf8(bytes)
        .map_err(|_| StartupError::Malformed("parameter is not UTF-8"))?
        .to_owned();
    *rest = after;
    Ok(s)
}

/// The session settings a client asked for in its startup packet, spelled as it spelled them:
/// every parameter except the ones about the connection itself, plus `-c name=value` /
/// `--name=value` from `options`. `client_encoding=UTF8` is dropped: pgwarm's server
/// connections log in with it already.
pub(crate) fn session_settings(params: &[(String, String)]) -> Vec<(String, String)> {
    let mut settings = Vec::new();
    for (name, value) in params {
        match name.as_str() {
            "user" | "database" | "replication" => {}
            "options" => settings.extend(command_line_settings(value)),
            "client_encoding" if is_utf8(value) => {}
            _ if name.starts_with("_pq_.") => {}
            _ => settings.push((name.clone(), value.clone())),
        }
    }
    settings
}

fn is_utf8(encoding: &str) -> bool {
    let e: String = encoding
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    e.eq_ignore_ascii_case("utf8") || e.eq_ignore_ascii_case("unicode")
}

/// `-c name=value` and `--name=value` from libpq's `options` (PGOPTIONS); a backslash escapes
/// the next character, spaces separate words. Other switches are left out.
fn command_line_settings(options: &str) -> Vec<(String, String)> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut chars = options.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => word.extend(chars.next()),
            c if c.is_ascii_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    let mut out = Vec::new();
    let mut words = words.into_iter();
    while let Some(word) = words.next() {
        let setting = if word == "-c" {
            words.next()
        } else {
            word.strip_prefix("-c")
                .or(word.strip_prefix("--"))
                .map(str::to_owned)
        };
        if let Some((name, value)) = setting.as_deref().and_then(|s| s.split_once('=')) {
            out.push((name.replace('-', "_"), value.to_owned()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use postgres_protocol::message::frontend;

    fn body_of(buf: &[u8]) -> &[u8] {
        &buf[4..]
    }

    #[test]
    fn parses_a_startup_message_from_a_real_encoder() {
        let mut buf = BytesMut::new();
        frontend::startup_message([("user", "app"), ("database", "db")], &mut buf).unwrap();
        let packet = parse(body_of(&buf)).unwrap();
        assert_eq!(
            packet,
            StartupPacket::Startup {
                minor: 0,
                params: vec![
                    ("user".into(), "app".into()),
                    ("database".into(), "db".into())
                ]
            }
        );
    }

    #[test]
    fn parses_ssl_and_cancel_requests() {
        let mut buf = BytesMut::new();
        frontend::ssl_request(&mut buf);
        assert_eq!(parse(body_of(&buf)), Ok(StartupPacket::SslRequest));
        let mut buf = BytesMut::new();
        frontend::cancel_request(42, -7, &mut buf);
        assert_eq!(
            parse(body_of(&buf)),
            Ok(StartupPacket::Cancel {
                pid: 42,
                secret: -7
            })
        );
    }

    #[test]
    fn rejects_unknown_codes_and_garbage() {
        assert_eq!(
            parse(&[0x00, 0x02, 0x00, 0x00]),
            Err(StartupError::UnsupportedProtocol { major: 2, minor: 0 })
        );
        assert!(parse(&[0, 3, 0, 0, b'u', b's']).is_err());
        assert!(parse(&[0, 3]).is_err());
        assert_eq!(check_len(4), Err(StartupError::BadLength(4)));
        assert!(check_len(MAX_STARTUP_LEN + 1).is_err());
    }
}

#[cfg(test)]
mod settings_tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn connection_parameters_are_not_settings() {
        let settings = session_settings(&params(&[
            ("user", "u"),
            ("database", "d"),
            ("client_encoding", "UTF8"),
            ("application_name", "psql"),
            ("TimeZone", "UTC"),
            ("_pq_.x", "1"),
        ]));
        assert_eq!(
            settings,
            params(&[("application_name", "psql"), ("TimeZone", "UTC")])
        );
        let latin = session_settings(&params(&[("client_encoding", "LATIN1")]));
        assert_eq!(latin, params(&[("client_encoding", "LATIN1")]));
    }

    #[test]
    fn options_carry_settings_like_postgres_reads_them() {
        let settings = session_settings(&params(&[(
            "options",
            r"-c search_path=a,b --statement-timeout=5s -csome.x=1 -c application_name=two\ words -B 10",
        )]));
        let want = [
            ("search_path", "a,b"),
            ("statement_timeout", "5s"),
            ("some.x", "1"),
            ("application_name", "two words"),
        ];
        assert_eq!(settings, params(&want));
    }
}
