//! Reading a request body: the lenient JSON extractor, its size limit, and
//! strings (names and free text) read strictly.

use poem::{Request, RequestBody, error::ReadBodyError};
use poem_openapi::{
    ApiExtractor, ApiExtractorType, ExtractParamOptions,
    registry::{MetaMediaType, MetaRequest, MetaSchema, MetaSchemaRef, Registry},
    types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type},
};
use serde_json::Value;

use crate::api::error::ApiError;

/// The largest request body accepted, attached to the app as request data.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit(pub usize);

/// An optional JSON body, read leniently: any content type (curl's default
/// form type included) and an empty body (the classic `curl -X POST /tasks`)
/// are accepted. Invalid JSON is a 400, JSON that does not fit `T` a 422, a
/// body over [`BodyLimit`] a 413.
#[derive(Debug)]
pub struct JsonBody<T>(pub Option<T>);

impl<'a, T: ParseFromJSON + Type> ApiExtractor<'a> for JsonBody<T> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: None,
            content: vec![MetaMediaType {
                content_type: "application/json",
                schema: T::schema_ref(),
            }],
            required: false,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let limit = request.data::<BodyLimit>().map_or(1024 * 1024, |l| l.0);
        let bytes = body.take()?.into_bytes_limit(limit).await.map_err(|e| match e {
            ReadBodyError::PayloadTooLarge => ApiError::too_large(limit).into_poem(),
            e => ApiError::bad_request("bad_body", e.to_string()).into_poem(),
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(None));
        }
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad_request("bad_json", format!("body is not valid JSON: {e}")).into_poem())?;
        if value.is_null() {
            return Ok(Self(None));
        }
        T::parse_from_json(Some(value))
            .map(|t| Self(Some(t)))
            .map_err(|e| ApiError::unprocessable("invalid_task", e.into_message()).into_poem())
    }
}

pub use crate::model::name::{MAX_QUEUE_NAME, MAX_TASK_NAME, is_safe_name};

/// A JSON string read strictly: poem-openapi's `String` also takes numbers and
/// booleans (`{"idempotency_key": 7}` would become `"7"`); the types below answer
/// 422 for them instead.
fn strict_string<T: Type>(value: Option<Value>) -> Result<String, ParseError<T>> {
    match value {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(ParseError::custom(format!(
            "expected a string, found {}",
            match other {
                Value::Null => "null",
                Value::Bool(_) => "a boolean",
                Value::Number(_) => "a number",
                Value::Array(_) => "an array",
                _ => "an object",
            }
        ))),
        None => Err(ParseError::expected_input()),
    }
}

/// A request body's string type, read with [`strict_string`]; `$constrain`
/// adds its limits to the OpenAPI schema (field validators add theirs).
macro_rules! strict_string_type {
    ($(#[$doc:meta])* $ty:ident, |$schema:ident| $constrain:block) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $ty(pub String);

        impl Type for $ty {
            const IS_REQUIRED: bool = true;
            type RawValueType = String;
            type RawElementValueType = String;

            fn name() -> std::borrow::Cow<'static, str> {
                "string".into()
            }

            fn schema_ref() -> MetaSchemaRef {
                #[allow(unused_mut)]
                let mut $schema = MetaSchema::new("string");
                $constrain
                MetaSchemaRef::Inline(Box::new($schema))
            }

            fn as_raw_value(&self) -> Option<&String> {
                Some(&self.0)
            }

            fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a String> + 'a> {
                Box::new(std::iter::once(&self.0))
            }
        }

        impl ToJSON for $ty {
            fn to_json(&self) -> Option<Value> {
                Some(Value::String(self.0.clone()))
            }
        }

        impl ParseFromJSON for $ty {
            fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
                strict_string(value).map(Self)
            }
        }
    };
}

strict_string_type!(
    /// Free text in a request body (a key, a URL, a cron pattern, ...).
    Text,
    |schema| {}
);
// The charset of names is checked by the handler, so its error names the field.
strict_string_type!(
    /// A queue name (`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$`).
    QueueName,
    |schema| {
        schema.min_length = Some(1);
        schema.max_length = Some(MAX_QUEUE_NAME);
        schema.pattern = Some("^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$".to_owned());
    }
);
strict_string_type!(
    /// A task name (`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,255}$`).
    TaskName,
    |schema| {
        schema.min_length = Some(1);
        schema.max_length = Some(MAX_TASK_NAME);
        schema.pattern = Some("^[A-Za-z0-9][A-Za-z0-9_.:-]{0,255}$".to_owned());
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_names_are_a_short_ascii_charset() {
        for ok in ["default", "media.encode-1", "a:b_c", "9", &"q".repeat(128)] {
            assert!(is_safe_name(ok, MAX_QUEUE_NAME), "{ok}");
        }
        for bad in [
            "",
            "a/b",
            "../../x",
            "-a",
            ".a",
            "a b",
            "a{b}",
            "é",
            "a\u{7f}",
            &"q".repeat(129),
        ] {
            assert!(!is_safe_name(bad, MAX_QUEUE_NAME), "{bad:?}");
        }
    }

    #[test]
    fn names_must_be_json_strings() {
        assert_eq!(
            QueueName::parse_from_json(Some(Value::from("q"))).ok(),
            Some(QueueName("q".into()))
        );
        assert!(QueueName::parse_from_json(Some(Value::from(5))).is_err());
        assert!(TaskName::parse_from_json(Some(Value::from(true))).is_err());
        assert!(TaskName::parse_from_json(Some(Value::Null)).is_err());
    }
}
