//! API errors and their Kubernetes `Status` form.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use weft_api::meta::{StatusCause, StatusDetails};
use weft_api::{ResourceInfo, Status};
use weft_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    NotFound { message: String },
    #[error("{message}")]
    AlreadyExists { message: String },
    #[error("{message}")]
    Conflict { message: String },
    /// Validation failure: each cause names a field path.
    #[error("{message}")]
    Invalid {
        message: String,
        causes: Vec<StatusCause>,
    },
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Gone(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn not_found(info: &ResourceInfo, name: &str) -> Self {
        ApiError::NotFound {
            message: format!("{} \"{name}\" not found", qualified(info)),
        }
    }

    pub fn already_exists(info: &ResourceInfo, name: &str) -> Self {
        ApiError::AlreadyExists {
            message: format!("{} \"{name}\" already exists", qualified(info)),
        }
    }

    pub fn conflict(info: &ResourceInfo, name: &str) -> Self {
        ApiError::Conflict {
            message: format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                qualified(info)
            ),
        }
    }

    /// A validation failure of `kind "name"`, with one cause per field error.
    pub fn invalid(kind: &str, name: &str, errors: &weft_api::ValidationErrors) -> Self {
        let causes = errors
            .0
            .iter()
            .map(|e| StatusCause {
                reason: Some("FieldValueInvalid".into()),
                message: e.to_string(),
                field: e.path.clone(),
            })
            .collect();
        ApiError::Invalid {
            message: format!("{kind} \"{name}\" is invalid: {errors}"),
            causes,
        }
    }

    /// One invalid field, for admission-time checks (allocation conflicts and ranges).
    pub fn invalid_field(kind: &str, name: &str, field: &str, value: &str, detail: &str) -> Self {
        let message = format!("{field}: Invalid value: \"{value}\": {detail}");
        ApiError::Invalid {
            message: format!("{kind} \"{name}\" is invalid: {message}"),
            causes: vec![StatusCause {
                reason: Some("FieldValueInvalid".into()),
                message,
                field: field.into(),
            }],
        }
    }

    pub fn code(&self) -> u16 {
        match self {
            ApiError::NotFound { .. } => 404,
            ApiError::AlreadyExists { .. } | ApiError::Conflict { .. } => 409,
            ApiError::Invalid { .. } => 422,
            ApiError::BadRequest(_) => 400,
            ApiError::Gone(_) => 410,
            ApiError::Unauthorized(_) => 401,
            ApiError::Forbidden(_) => 403,
            ApiError::MethodNotAllowed(_) => 405,
            ApiError::TooLarge(_) => 413,
            ApiError::UnsupportedMediaType(_) => 415,
            ApiError::Internal(_) => 500,
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::NotFound { .. } => "NotFound",
            ApiError::AlreadyExists { .. } => "AlreadyExists",
            ApiError::Conflict { .. } => "Conflict",
            ApiError::Invalid { .. } => "Invalid",
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::Gone(_) => "Expired",
            ApiError::Unauthorized(_) => "Unauthorized",
            ApiError::Forbidden(_) => "Forbidden",
            ApiError::MethodNotAllowed(_) => "MethodNotAllowed",
            ApiError::TooLarge(_) => "RequestEntityTooLarge",
            ApiError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            ApiError::Internal(_) => "InternalError",
        }
    }

    pub fn to_status(&self) -> Status {
        let mut status = Status::failure(self.code(), self.reason(), self.to_string());
        if let ApiError::Invalid { causes, .. } = self {
            status.details = Some(StatusDetails {
                causes: causes.clone(),
                ..Default::default()
            });
        }
        status
    }
}

/// `services` or `ingresses.networking.k8s.io`, as Kubernetes names resources in messages.
pub fn qualified(info: &ResourceInfo) -> String {
    if info.group.is_empty() {
        info.plural.to_string()
    } else {
        format!("{}.{}", info.plural, info.group)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { key } => ApiError::NotFound {
                message: format!("{key} not found"),
            },
            StoreError::AlreadyExists { key } => ApiError::AlreadyExists {
                message: format!("{key} already exists"),
            },
            StoreError::Conflict { key, .. } => ApiError::Conflict {
                message: format!("{key}: the object has been modified; please apply your changes to the latest version and try again"),
            },
            StoreError::Gone {
                requested,
                compacted,
            } => ApiError::Gone(format!(
                "too old resource version: {requested} ({compacted})"
            )),
            StoreError::Backend(m) => ApiError::Internal(format!("storage: {m}")),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(m) = &self {
            tracing::error!(error = %m, "internal error");
        }
        let code = StatusCode::from_u16(self.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (code, axum::Json(self.to_status())).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
