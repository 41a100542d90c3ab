//! DescribeClientQuotas and AlterClientQuotas: quotas per user, client id or ip, validated
//! (`client_quotas`), stored in the metadata image by the controller, and described through
//! Kafka's filter. Riffle does not throttle by them yet.

use std::rc::Rc;

use riffle_protocol::error_code;
use riffle_protocol::messages::alter_client_quotas_response::{
    EntityData as AlteredEntity, EntryData as AlteredEntry,
};
use riffle_protocol::messages::describe_client_quotas_response::{
    EntityData, EntryData, ValueData,
};
use riffle_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, DescribeClientQuotasRequest,
    DescribeClientQuotasResponse,
};

use crate::client_quotas::{self, Component, QuotaEntry};
use crate::errors;
use crate::metadata::calls;
use crate::shard::Shard;

pub fn describe(
    shard: &Rc<Shard>,
    request: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    let components: Vec<Component> = request
        .components
        .into_iter()
        .map(|c| (c.entity_type, c.match_type, c.match_))
        .collect();
    if let Err(message) = client_quotas::check_filter(&components) {
        return DescribeClientQuotasResponse {
            error_code: error_code::INVALID_REQUEST,
            error_message: Some(message),
            entries: None,
            ..Default::default()
        };
    }
    let image = shard.image();
    let entries = image
        .client_quotas
        .iter()
        .filter(|q| client_quotas::matches(q, &components, request.strict))
        .map(described)
        .collect();
    DescribeClientQuotasResponse {
        error_code: error_code::NONE,
        entries: Some(entries),
        ..Default::default()
    }
}

fn described(entry: &QuotaEntry) -> EntryData {
    EntryData {
        entity: entry
            .entity
            .iter()
            .map(|(kind, name)| EntityData {
                entity_type: kind.clone(),
                entity_name: name.clone(),
            })
            .collect(),
        values: entry
            .values
            .iter()
            .map(|(key, value)| ValueData {
                key: key.clone(),
                value: value.parse().unwrap_or_default(),
            })
            .collect(),
    }
}

/// Each entry is checked and applied on its own (Kafka answers each); the valid ones are then
/// stored together.
pub async fn alter(
    shard: &Rc<Shard>,
    request: AlterClientQuotasRequest,
) -> AlterClientQuotasResponse {
    let mut quotas = shard.image().client_quotas.clone();
    let mut answers = Vec::with_capacity(request.entries.len());
    for entry in request.entries {
        let entity: Vec<(String, Option<String>)> = entry
            .entity
            .iter()
            .map(|e| (e.entity_type.clone(), e.entity_name.clone()))
            .collect();
        let ops: Vec<(String, f64, bool)> = entry
            .ops
            .iter()
            .map(|o| (o.key.clone(), o.value, o.remove))
            .collect();
        let outcome = client_quotas::alter(&mut quotas, entity, &ops);
        answers.push((
            entry.entity,
            outcome.map_err(|m| (error_code::INVALID_REQUEST, m)),
        ));
    }
    let changed = answers.iter().any(|(_, outcome)| outcome.is_ok());
    if changed && !request.validate_only {
        if let Err(e) = calls::set_client_quotas(shard, quotas).await {
            let failure = errors::controller_answer(e);
            for (_, outcome) in answers.iter_mut().filter(|(_, o)| o.is_ok()) {
                *outcome = Err(failure.clone());
            }
        }
    }
    AlterClientQuotasResponse {
        entries: answers.into_iter().map(answered).collect(),
        ..Default::default()
    }
}

type Answer = (
    Vec<riffle_protocol::messages::alter_client_quotas_request::EntityData>,
    Result<(), (i16, String)>,
);

fn answered((entity, outcome): Answer) -> AlteredEntry {
    let (error_code, error_message) = match outcome {
        Ok(()) => (error_code::NONE, None),
        Err((code, message)) => (code, Some(message)),
    };
    AlteredEntry {
        error_code,
        error_message,
        entity: entity
            .into_iter()
            .map(|e| AlteredEntity {
                entity_type: e.entity_type,
                entity_name: e.entity_name,
            })
            .collect(),
    }
}
