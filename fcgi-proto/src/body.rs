//! The fixed-size bodies: `FCGI_BEGIN_REQUEST`, `FCGI_END_REQUEST` and `FCGI_UNKNOWN_TYPE`.

use std::fmt;

use crate::header::RecordType;

/// Length of every fixed-size body defined by FastCGI 1.0.
pub const FIXED_BODY_LEN: usize = 8;

/// The role a request asks the application to play. Any value is representable so that
/// a server side can answer a role it does not know with `FCGI_UNKNOWN_ROLE`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Role(pub u16);

impl Role {
    /// `FCGI_RESPONDER` (1): the ordinary request/response role.
    pub const RESPONDER: Self = Self(1);
    /// `FCGI_AUTHORIZER` (2): the application decides whether a request is allowed.
    pub const AUTHORIZER: Self = Self(2);
    /// `FCGI_FILTER` (3): the application filters `FCGI_DATA` into `FCGI_STDOUT`.
    pub const FILTER: Self = Self(3);
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            1 => f.write_str("RESPONDER"),
            2 => f.write_str("AUTHORIZER"),
            3 => f.write_str("FILTER"),
            other => write!(f, "role {other}"),
        }
    }
}

/// Bit 0 of the BEGIN_REQUEST flags: keep the connection open after the request.
const FLAG_KEEP_CONN: u8 = 1;

/// The body of `FCGI_BEGIN_REQUEST`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct BeginRequest {
    /// The role asked for.
    pub role: Role,
    /// `FCGI_KEEP_CONN`: when false the application closes the connection after the request.
    pub keep_conn: bool,
}

impl BeginRequest {
    /// The wire body: role, flags, five reserved zero bytes.
    pub fn to_bytes(&self) -> [u8; FIXED_BODY_LEN] {
        let role = self.role.0.to_be_bytes();
        let flags = if self.keep_conn { FLAG_KEEP_CONN } else { 0 };
        [role[0], role[1], flags, 0, 0, 0, 0, 0]
    }

    /// Reads the body; flag bits other than KEEP_CONN and the reserved bytes are ignored.
    pub fn parse(bytes: &[u8; FIXED_BODY_LEN]) -> Self {
        Self {
            role: Role(u16::from_be_bytes([bytes[0], bytes[1]])),
            keep_conn: bytes[2] & FLAG_KEEP_CONN != 0,
        }
    }
}

/// How the application ended a request (`protocolStatus` of `FCGI_END_REQUEST`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProtocolStatus(pub u8);

impl ProtocolStatus {
    /// `FCGI_REQUEST_COMPLETE` (0): normal end of request.
    pub const REQUEST_COMPLETE: Self = Self(0);
    /// `FCGI_CANT_MPX_CONN` (1): refused a second concurrent request on this connection.
    pub const CANT_MPX_CONN: Self = Self(1);
    /// `FCGI_OVERLOADED` (2): refused the request for lack of resources.
    pub const OVERLOADED: Self = Self(2);
    /// `FCGI_UNKNOWN_ROLE` (3): refused the role asked for.
    pub const UNKNOWN_ROLE: Self = Self(3);

    /// The spec's name, or `None` for a value it does not define.
    pub const fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "FCGI_REQUEST_COMPLETE",
            1 => "FCGI_CANT_MPX_CONN",
            2 => "FCGI_OVERLOADED",
            3 => "FCGI_UNKNOWN_ROLE",
            _ => return None,
        })
    }
}

impl fmt::Display for ProtocolStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "protocol status {}", self.0),
        }
    }
}

/// The body of `FCGI_END_REQUEST`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct EndRequest {
    /// The application's exit status (php-fpm always sends 0).
    pub app_status: u32,
    /// How the request ended at the protocol level.
    pub protocol_status: ProtocolStatus,
}

impl EndRequest {
    /// The wire body: app status, protocol status, three reserved zero bytes.
    pub fn to_bytes(&self) -> [u8; FIXED_BODY_LEN] {
        let app = self.app_status.to_be_bytes();
        [app[0], app[1], app[2], app[3], self.protocol_status.0, 0, 0, 0]
    }

    /// Reads the body; the reserved bytes are ignored (php-fpm does not zero them).
    pub fn parse(bytes: &[u8; FIXED_BODY_LEN]) -> Self {
        Self {
            app_status: u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            protocol_status: ProtocolStatus(bytes[4]),
        }
    }
}

/// The body of `FCGI_UNKNOWN_TYPE`: the type byte that was not understood.
pub(crate) fn unknown_type_bytes(unknown: RecordType) -> [u8; FIXED_BODY_LEN] {
    [unknown.0, 0, 0, 0, 0, 0, 0, 0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn begin_request_vector() {
        let begin = BeginRequest { role: Role::RESPONDER, keep_conn: true };
        assert_eq!(begin.to_bytes(), [0, 1, 1, 0, 0, 0, 0, 0]);
        assert_eq!(
            BeginRequest::parse(&[0, 3, 0xfe, 9, 9, 9, 9, 9]),
            BeginRequest { role: Role::FILTER, keep_conn: false }
        );
    }

    #[test]
    fn end_request_vector_and_dirty_reserved_bytes() {
        let end = EndRequest { app_status: 0x0102_0304, protocol_status: ProtocolStatus::OVERLOADED };
        assert_eq!(end.to_bytes(), [1, 2, 3, 4, 2, 0, 0, 0]);
        // php-fpm leaves stack garbage ("ml;") in the reserved bytes.
        assert_eq!(
            EndRequest::parse(&[0, 0, 0, 0, 0, b'm', b'l', b';']),
            EndRequest { app_status: 0, protocol_status: ProtocolStatus::REQUEST_COMPLETE }
        );
    }

    #[test]
    fn names() {
        assert_eq!(ProtocolStatus::CANT_MPX_CONN.to_string(), "FCGI_CANT_MPX_CONN");
        assert_eq!(ProtocolStatus(9).to_string(), "protocol status 9");
        assert_eq!(Role::AUTHORIZER.to_string(), "AUTHORIZER");
        assert_eq!(Role(7).to_string(), "role 7");
    }
}
