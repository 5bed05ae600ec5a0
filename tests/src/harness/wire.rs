//! A raw wire-protocol client for tests that must send what no driver would: garbage, unknown
//! startup codes, oversized messages, a socket closed mid-transaction.

use bytes::{BufMut, BytesMut};
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A blocking connection that speaks bytes and reads typed backend messages.
pub struct Wire {
    pub stream: TcpStream,
    buf: BytesMut,
}

/// The fields of an ErrorResponse that tests look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    pub severity: String,
    pub code: String,
    pub message: String,
}

impl Wire {
    /// Opens a TCP connection without logging in.
    pub fn connect(addr: SocketAddr) -> Wire {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("set timeout");
        Wire {
            stream,
            buf: BytesMut::new(),
        }
    }

    /// Opens a connection and logs in (no password), reading up to the first ReadyForQuery.
    /// Returns the synthetic (pid, secret) from BackendKeyData.
    pub fn login(addr: SocketAddr, user: &str, database: &str) -> (Wire, (i32, i32)) {
        let (wire, key, _) = Wire::login_with(addr, user, database, &[]);
        (wire, key)
    }

    /// Like [`Wire::login`] with more startup parameters (application_name, TimeZone, ...).
    /// Also returns the ParameterStatus pairs of the login, in order.
    pub fn login_with(
        addr: SocketAddr,
        user: &str,
        database: &str,
        params: &[(&str, &str)],
    ) -> (Wire, (i32, i32), Vec<(String, String)>) {
        let mut wire = Wire::connect(addr);
        wire.send_startup(user, database, params);
        let mut key = (0, 0);
        let mut statuses = Vec::new();
        loop {
            match wire.read() {
                Some(Message::BackendKeyData(k)) => key = (k.process_id(), k.secret_key()),
                Some(Message::ParameterStatus(p)) => statuses.push((
                    p.name().expect("parameter name").to_owned(),
                    p.value().expect("parameter value").to_owned(),
                )),
                Some(Message::ReadyForQuery(_)) => return (wire, key, statuses),
                Some(Message::ErrorResponse(body)) => {
                    panic!("login refused: {:?}", error_fields(&body))
                }
                Some(_) => {}
                None => panic!("connection closed during login"),
            }
        }
    }

    /// Sends a StartupMessage for `user` and `database` with `params`, reading nothing.
    pub fn send_startup(&mut self, user: &str, database: &str, params: &[(&str, &str)]) {
        let mut out = BytesMut::new();
        let all = [("user", user), ("database", database)]
            .into_iter()
            .chain(params.iter().copied());
        frontend::startup_message(all, &mut out).expect("encode startup");
        self.send(&out);
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to pgwarm");
    }

    /// Sends a simple Query and collects messages up to ReadyForQuery.
    pub fn query(&mut self, sql: &str) -> Vec<Message> {
        let mut out = BytesMut::new();
        frontend::query(sql, &mut out).expect("encode query");
        self.send(&out);
        let mut messages = Vec::new();
        loop {
            match self.read() {
                Some(Message::ReadyForQuery(r)) => {
                    messages.push(Message::ReadyForQuery(r));
                    return messages;
                }
                Some(m) => messages.push(m),
                None => panic!("connection closed during a query"),
            }
        }
    }

    /// Sends `batch` and collects the replies up to its last ReadyForQuery (one per Sync or
    /// Query in it); panics, showing what came so far, if the connection ends first.
    pub fn run(&mut self, batch: &Batch) -> Vec<Reply> {
        self.send(&batch.buf);
        let mut replies = Vec::new();
        let mut readies = 0;
        while readies < batch.readies {
            let Some(message) = self.read() else {
                panic!(
                    "connection closed (or 10 s without an answer) after {readies} of {} \
                     ReadyForQuery; replies so far: {replies:?}",
                    batch.readies
                );
            };
            let reply = Reply::from(message);
            readies += usize::from(matches!(reply, Reply::Ready(_)));
            replies.push(reply);
        }
        replies
    }

    /// The next backend message, or None at EOF (or a reset).
    pub fn read(&mut self) -> Option<Message> {
        loop {
            if let Some(m) = Message::parse(&mut self.buf).expect("valid backend message") {
                return Some(m);
            }
            let mut chunk = [0u8; 8192];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Reads messages until an ErrorResponse and returns it; panics if none comes before EOF.
    pub fn expect_error(&mut self) -> WireError {
        loop {
            match self.read() {
                Some(Message::ErrorResponse(body)) => return error_fields(&body),
                Some(_) => {}
                None => panic!("connection closed without an ErrorResponse"),
            }
        }
    }

    /// True if the server closes the connection (EOF) within the read timeout.
    pub fn is_closed(&mut self) -> bool {
        self.buf.clear();
        let mut chunk = [0u8; 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) => {
                    return matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
                    )
                }
            }
        }
    }
}

/// Builds one frontend message by hand: type byte, length, body.
pub fn raw_message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    out.put_u8(tag);
    out.put_i32(body.len() as i32 + 4);
    out.extend_from_slice(body);
    out.to_vec()
}

/// A CancelRequest for (pid, secret), sent on a new connection like libpq does.
pub fn send_cancel(addr: SocketAddr, pid: i32, secret: i32) {
    let mut out = BytesMut::new();
    frontend::cancel_request(pid, secret, &mut out);
    let mut wire = Wire::connect(addr);
    wire.send(&out);
    assert!(wire.is_closed(), "pgwarm closes a cancel connection");
}

pub fn error_fields(body: &postgres_protocol::message::backend::ErrorResponseBody) -> WireError {
    use fallible_iterator::FallibleIterator;
    let mut fields = body.fields();
    let mut e = WireError {
        severity: String::new(),
        code: String::new(),
        message: String::new(),
    };
    while let Ok(Some(f)) = fields.next() {
        let v = String::from_utf8_lossy(f.value_bytes()).into_owned();
        match f.type_() {
            b'S' => e.severity = v,
            b'C' => e.code = v,
            b'M' => e.message = v,
            _ => {}
        }
    }
    e
}

/// SQLSTATE of a tokio-postgres error, or "" when it is not a database error.
pub fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.code().map(|c| c.code().to_owned()).unwrap_or_default()
}

/// Frontend messages to send in one write (see [`Wire::run`]): the extended protocol with text
/// parameters and text results, on the unnamed portal.
#[derive(Debug, Default)]
pub struct Batch {
    buf: BytesMut,
    readies: usize,
}

impl Batch {
    pub fn new() -> Batch {
        Batch::default()
    }

    /// Flush: the server answers what it has without waiting for a Sync.
    pub fn flush(mut self) -> Batch {
        frontend::flush(&mut self.buf);
        self
    }

    /// The bytes, for a caller that reads the answers itself (a batch without a Sync).
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Parse `sql` as statement `name` ("" = unnamed), parameter types left to the server.
    pub fn parse(mut self, name: &str, sql: &str) -> Batch {
        frontend::parse(name, sql, [], &mut self.buf).expect("encode Parse");
        self
    }

    /// Bind statement `name` to the unnamed portal with text parameters (`None` = NULL).
    pub fn bind(mut self, name: &str, params: &[Option<&str>]) -> Batch {
        type BoxError = Box<dyn std::error::Error + Sync + Send>;
        let serialize = |p: &Option<&str>, buf: &mut BytesMut| -> Result<_, BoxError> {
            Ok(match p {
                Some(v) => {
                    buf.put_slice(v.as_bytes());
                    postgres_protocol::IsNull::No
                }
                None => postgres_protocol::IsNull::Yes,
            })
        };
        let ok = frontend::bind("", name, [0], params, serialize, [0], &mut self.buf);
        assert!(ok.is_ok(), "encode Bind");
        self
    }

    /// Describe statement `name`.
    pub fn describe_statement(mut self, name: &str) -> Batch {
        frontend::describe(b'S', name, &mut self.buf).expect("encode Describe");
        self
    }

    /// Describe the unnamed portal.
    pub fn describe_portal(mut self) -> Batch {
        frontend::describe(b'P', "", &mut self.buf).expect("encode Describe");
        self
    }

    /// Execute the unnamed portal, all rows.
    pub fn execute(mut self) -> Batch {
        frontend::execute("", 0, &mut self.buf).expect("encode Execute");
        self
    }

    /// Close statement `name`.
    pub fn close_statement(mut self, name: &str) -> Batch {
        frontend::close(b'S', name, &mut self.buf).expect("encode Close");
        self
    }

    pub fn sync(mut self) -> Batch {
        frontend::sync(&mut self.buf);
        self.readies += 1;
        self
    }

    /// Parse `sql` as statement `name` and Sync: one preparation.
    pub fn prepare(name: &str, sql: &str) -> Batch {
        Batch::new().parse(name, sql).sync()
    }

    /// Bind statement `name` with text parameters, execute it and Sync: one execution.
    pub fn exec(name: &str, params: &[Option<&str>]) -> Batch {
        Batch::new().bind(name, params).execute().sync()
    }

    /// A simple Query.
    pub fn query(mut self, sql: &str) -> Batch {
        frontend::query(sql, &mut self.buf).expect("encode Query");
        self.readies += 1;
        self
    }
}

/// A backend message reduced to what tests compare: owned, comparable and printable. Values
/// are shown as text (the [`Batch`] asks for text results).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    ParseComplete,
    BindComplete,
    CloseComplete,
    NoData,
    EmptyQuery,
    PortalSuspended,
    /// The number of parameters.
    ParameterDescription(usize),
    /// The column names.
    RowDescription(Vec<String>),
    DataRow(Vec<Option<String>>),
    CommandComplete(String),
    Error(WireError),
    Notice,
    ParameterStatus(String, String),
    /// The transaction status: 'I', 'T' or 'E'.
    Ready(char),
    /// Anything else (COPY, notifications, authentication).
    Other,
}

impl Reply {
    /// A DataRow of one value.
    pub fn row(value: &str) -> Reply {
        Reply::DataRow(vec![Some(value.to_owned())])
    }

    /// The SQLSTATEs of the ErrorResponses among `replies`.
    pub fn codes(replies: &[Reply]) -> Vec<String> {
        replies
            .iter()
            .filter_map(|r| match r {
                Reply::Error(e) => Some(e.code.clone()),
                _ => None,
            })
            .collect()
    }

    /// The first column of every DataRow among `replies` (NULL as "").
    pub fn values(replies: &[Reply]) -> Vec<String> {
        replies
            .iter()
            .filter_map(|r| match r {
                Reply::DataRow(v) => Some(v.first().cloned().flatten().unwrap_or_default()),
                _ => None,
            })
            .collect()
    }
}

impl From<Message> for Reply {
    fn from(message: Message) -> Reply {
        use fallible_iterator::FallibleIterator;
        match message {
            Message::ParseComplete => Reply::ParseComplete,
            Message::BindComplete => Reply::BindComplete,
            Message::CloseComplete => Reply::CloseComplete,
            Message::NoData => Reply::NoData,
            Message::EmptyQueryResponse => Reply::EmptyQuery,
            Message::PortalSuspended => Reply::PortalSuspended,
            Message::ParameterDescription(body) => {
                Reply::ParameterDescription(body.parameters().count().expect("parameter types"))
            }
            Message::RowDescription(body) => Reply::RowDescription(
                body.fields()
                    .map(|f| Ok(f.name().to_owned()))
                    .collect()
                    .expect("row description"),
            ),
            Message::DataRow(body) => {
                let buf = body.buffer();
                let values = body
                    .ranges()
                    .map(|r| Ok(r.map(|r| String::from_utf8_lossy(&buf[r]).into_owned())))
                    .collect()
                    .expect("data row");
                Reply::DataRow(values)
            }
            Message::CommandComplete(body) => {
                Reply::CommandComplete(body.tag().expect("command tag").to_owned())
            }
            Message::ErrorResponse(body) => Reply::Error(error_fields(&body)),
            Message::NoticeResponse(_) => Reply::Notice,
            Message::ParameterStatus(body) => Reply::ParameterStatus(
                body.name().expect("parameter name").to_owned(),
                body.value().expect("parameter value").to_owned(),
            ),
            Message::ReadyForQuery(body) => Reply::Ready(char::from(body.status())),
            _ => Reply::Other,
        }
    }
}
