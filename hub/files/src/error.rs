//! Every refusal and failure of the file store, each with a stable code (`docs/errors.md`,
//! `docs/files.md`), the HTTP status an adapter answers it with, and a message in Chinese and
//! English for partners. Messages never carry file contents, personal data or secrets.

use std::fmt;

/// The stable codes of the file store, its transfer helpers and SFTP exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileErrorCode {
    TooLarge,
    Empty,
    TypeNotAllowed,
    TypeMismatch,
    TypeUnrecognised,
    IdInvalid,
    NotFound,
    UploadIncomplete,
    Integrity,
    EncryptionUnavailable,
    StoreUnavailable,
    Base64Invalid,
    MultipartInvalid,
    UrlRefused,
    FetchFailed,
    SendFailed,
    SftpConnectFailed,
    SftpHostKeyMismatch,
    SftpAuthFailed,
    SftpFailed,
    SftpPermissionDenied,
    NameInvalid,
    ConfigInvalid,
}

impl FileErrorCode {
    pub const ALL: &'static [FileErrorCode] = &[
        FileErrorCode::TooLarge,
        FileErrorCode::Empty,
        FileErrorCode::TypeNotAllowed,
        FileErrorCode::TypeMismatch,
        FileErrorCode::TypeUnrecognised,
        FileErrorCode::IdInvalid,
        FileErrorCode::NotFound,
        FileErrorCode::UploadIncomplete,
        FileErrorCode::Integrity,
        FileErrorCode::EncryptionUnavailable,
        FileErrorCode::StoreUnavailable,
        FileErrorCode::Base64Invalid,
        FileErrorCode::MultipartInvalid,
        FileErrorCode::UrlRefused,
        FileErrorCode::FetchFailed,
        FileErrorCode::SendFailed,
        FileErrorCode::SftpConnectFailed,
        FileErrorCode::SftpHostKeyMismatch,
        FileErrorCode::SftpAuthFailed,
        FileErrorCode::SftpFailed,
        FileErrorCode::SftpPermissionDenied,
        FileErrorCode::NameInvalid,
        FileErrorCode::ConfigInvalid,
    ];

    /// The stable code.
    pub fn code(self) -> &'static str {
        match self {
            FileErrorCode::TooLarge => "FILE_TOO_LARGE",
            FileErrorCode::Empty => "FILE_EMPTY",
            FileErrorCode::TypeNotAllowed => "FILE_TYPE_NOT_ALLOWED",
            FileErrorCode::TypeMismatch => "FILE_TYPE_MISMATCH",
            FileErrorCode::TypeUnrecognised => "FILE_TYPE_UNRECOGNISED",
            FileErrorCode::IdInvalid => "FILE_ID_INVALID",
            FileErrorCode::NotFound => "FILE_NOT_FOUND",
            FileErrorCode::UploadIncomplete => "FILE_UPLOAD_INCOMPLETE",
            FileErrorCode::Integrity => "FILE_INTEGRITY",
            FileErrorCode::EncryptionUnavailable => "FILE_ENCRYPTION_UNAVAILABLE",
            FileErrorCode::StoreUnavailable => "FILE_STORE_UNAVAILABLE",
            FileErrorCode::Base64Invalid => "FILE_BASE64_INVALID",
            FileErrorCode::MultipartInvalid => "FILE_MULTIPART_INVALID",
            FileErrorCode::UrlRefused => "FILE_URL_REFUSED",
            FileErrorCode::FetchFailed => "FILE_FETCH_FAILED",
            FileErrorCode::SendFailed => "FILE_SEND_FAILED",
            FileErrorCode::SftpConnectFailed => "SFTP_CONNECT_FAILED",
            FileErrorCode::SftpHostKeyMismatch => "SFTP_HOST_KEY_MISMATCH",
            FileErrorCode::SftpAuthFailed => "SFTP_AUTH_FAILED",
            FileErrorCode::SftpFailed => "SFTP_FAILED",
            FileErrorCode::SftpPermissionDenied => "SFTP_PERMISSION_DENIED",
            FileErrorCode::NameInvalid => "FILE_NAME_INVALID",
            FileErrorCode::ConfigInvalid => "FILE_CONFIG_INVALID",
        }
    }

    /// The HTTP status an adapter answers a partner with when this refusal ends a request.
    pub fn status(self) -> u16 {
        match self {
            FileErrorCode::TooLarge => 413,
            FileErrorCode::Empty
            | FileErrorCode::IdInvalid
            | FileErrorCode::UploadIncomplete
            | FileErrorCode::Base64Invalid
            | FileErrorCode::MultipartInvalid
            | FileErrorCode::UrlRefused
            | FileErrorCode::NameInvalid => 400,
            FileErrorCode::TypeNotAllowed
            | FileErrorCode::TypeMismatch
            | FileErrorCode::TypeUnrecognised => 415,
            FileErrorCode::NotFound => 404,
            FileErrorCode::Integrity
            | FileErrorCode::EncryptionUnavailable
            | FileErrorCode::ConfigInvalid => 500,
            FileErrorCode::StoreUnavailable => 503,
            FileErrorCode::FetchFailed
            | FileErrorCode::SendFailed
            | FileErrorCode::SftpConnectFailed
            | FileErrorCode::SftpHostKeyMismatch
            | FileErrorCode::SftpAuthFailed
            | FileErrorCode::SftpFailed
            | FileErrorCode::SftpPermissionDenied => 502,
        }
    }

    /// Chinese first, English beside.
    pub fn messages(self) -> (&'static str, &'static str) {
        match self {
            FileErrorCode::TooLarge => ("文件超过大小上限", "the file exceeds the size limit"),
            FileErrorCode::Empty => ("文件为空", "the file is empty"),
            FileErrorCode::TypeNotAllowed => (
                "文件类型不在允许范围内",
                "the file type is not allowed here",
            ),
            FileErrorCode::TypeMismatch => (
                "文件内容与声明的类型不符",
                "the file's content does not match its declared type",
            ),
            FileErrorCode::TypeUnrecognised => {
                ("无法识别文件类型", "the file's type is not recognised")
            }
            FileErrorCode::IdInvalid => ("文件标识格式错误", "the file id is malformed"),
            FileErrorCode::NotFound => ("文件不存在", "no such file"),
            FileErrorCode::UploadIncomplete => ("文件上传未完成", "the upload did not complete"),
            FileErrorCode::Integrity => (
                "文件内容校验失败",
                "the stored file does not match its SM3 digest or does not decrypt",
            ),
            FileErrorCode::EncryptionUnavailable => (
                "文件加密密钥不可用",
                "no key ring is available to encrypt or decrypt the file",
            ),
            FileErrorCode::StoreUnavailable => {
                ("文件存储暂不可用", "the file store is unavailable")
            }
            FileErrorCode::Base64Invalid => ("Base64 编码错误", "the base64 content is invalid"),
            FileErrorCode::MultipartInvalid => (
                "multipart/form-data 请求格式错误",
                "the multipart/form-data body is malformed or lacks the file part",
            ),
            FileErrorCode::UrlRefused => ("文件地址不被允许", "the file URL is not allowed"),
            FileErrorCode::FetchFailed => ("获取文件失败", "fetching the file failed"),
            FileErrorCode::SendFailed => ("发送文件失败", "sending the file failed"),
            FileErrorCode::SftpConnectFailed => ("SFTP 连接失败", "the SFTP connection failed"),
            FileErrorCode::SftpHostKeyMismatch => (
                "SFTP 服务器主机密钥与配置的指纹不符",
                "the SFTP server's host key does not match the pinned fingerprint",
            ),
            FileErrorCode::SftpAuthFailed => ("SFTP 认证失败", "SFTP authentication failed"),
            FileErrorCode::SftpFailed => ("SFTP 操作失败", "an SFTP operation failed"),
            FileErrorCode::SftpPermissionDenied => (
                "SFTP 服务器拒绝访问（权限不足）",
                "the SFTP server denied permission",
            ),
            FileErrorCode::NameInvalid => (
                "文件名不是合法的单一文件名",
                "the file name is not a plain file name",
            ),
            FileErrorCode::ConfigInvalid => (
                "文件存储配置错误",
                "the file store's configuration is invalid",
            ),
        }
    }
}

impl FileErrorCode {
    /// Whether the same operation may succeed later without anything changing in the request:
    /// a server or store that is away, a connection that failed, a timeout, credentials or a
    /// host key an operator may fix. The others (a missing or malformed file, a refused name,
    /// a denied permission, content that does not verify) are permanent for that request.
    pub fn transient(self) -> bool {
        matches!(
            self,
            FileErrorCode::StoreUnavailable
                | FileErrorCode::FetchFailed
                | FileErrorCode::SendFailed
                | FileErrorCode::SftpConnectFailed
                | FileErrorCode::SftpHostKeyMismatch
                | FileErrorCode::SftpAuthFailed
                | FileErrorCode::SftpFailed
        )
    }
}

impl fmt::Display for FileErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A refusal or failure: its code and a detail for operators (never file contents, personal
/// data or secrets).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {detail}")]
pub struct FileError {
    pub code: FileErrorCode,
    pub detail: String,
}

impl FileError {
    pub fn new(code: FileErrorCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
        }
    }

    pub fn code(&self) -> &'static str {
        self.code.code()
    }

    pub(crate) fn store(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { .. } => {
                FileError::new(FileErrorCode::NotFound, "the object is missing")
            }
            other => FileError::new(FileErrorCode::StoreUnavailable, other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_have_both_messages() {
        let mut seen = std::collections::BTreeSet::new();
        for c in FileErrorCode::ALL {
            assert!(seen.insert(c.code()), "duplicate {}", c.code());
            let (zh, en) = c.messages();
            assert!(!zh.is_empty() && !en.is_empty());
        }
    }
}
