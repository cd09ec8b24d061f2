"""Store rows as API JSON: one place decides what leaves the daemon."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from crm_store.models import (
    AuditEntry,
    ContactPoint,
    Customer,
    Interaction,
    Message,
    ServiceRequest,
    ServiceRequestTransition,
    User,
)


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC, or None."""
    return None if value is None else value.isoformat()


def contact_point_json(cp: ContactPoint) -> dict[str, Any]:
    """A contact point: normalised value and what was typed."""
    return {"id": cp.id, "kind": cp.kind, "value": cp.value, "raw": cp.raw, "label": cp.label}


def customer_json(customer: Customer, *, with_contacts: bool = True) -> dict[str, Any]:
    """A customer record (contact points must be loaded when `with_contacts`)."""
    body: dict[str, Any] = {
        "id": customer.id,
        "name": customer.name,
        "company": customer.company,
        "tier": customer.tier,
        "language": customer.language,
        "segment": customer.segment,
        "notes": customer.notes,
        "created_at": iso(customer.created_at),
        "updated_at": iso(customer.updated_at),
    }
    if with_contacts:
        body["contact_points"] = [contact_point_json(cp) for cp in customer.contact_points]
    return body


def interaction_json(ix: Interaction) -> dict[str, Any]:
    """An interaction on any channel."""
    return {
        "id": ix.id,
        "customer_id": ix.customer_id,
        "channel": ix.channel,
        "direction": ix.direction,
        "external_id": ix.external_id,
        "address": ix.address,
        "started_at": iso(ix.started_at),
        "offered_at": iso(ix.offered_at),
        "answered_at": iso(ix.answered_at),
        "ended_at": iso(ix.ended_at),
        "queue": ix.queue,
        "agent_id": ix.agent_id,
        "ivr_path": ix.ivr_path,
        "ivr_inputs": ix.ivr_inputs,
        "routing": ix.routing,
        "end_cause": ix.end_cause,
        "disposition": ix.disposition,
        "notes": ix.notes,
        "recording_ref": ix.recording_ref,
        "csat": ix.csat,
    }


_NOT_SENT = ("failed", "undelivered", "queued")


def message_json(message: Message) -> dict[str, Any]:
    """An email, SMS or chat message."""
    return {
        "id": message.id,
        "interaction_id": message.interaction_id,
        "channel": message.channel,
        "direction": message.direction,
        "sender": message.sender,
        "subject": message.subject,
        "body": message.body,
        "provider_id": message.provider_id,
        "created_at": iso(message.created_at),
        "sender_name": message.sender_name,
        "recipient": message.recipient,
        "attachments": message.attachments or [],
        "status": message.status,
        "status_at": iso(message.status_at),
        # Why it is not sent (yet): shown to the agent, never dropped.
        "error": message.last_error if message.status in _NOT_SENT else None,
        "attempts": message.attempts,
        "author_id": message.author_id,
    }


def transition_json(tr: ServiceRequestTransition) -> dict[str, Any]:
    """One step of a service request's workflow: who moved it, when."""
    return {
        "from": tr.from_status,
        "to": tr.to_status,
        "actor_id": tr.actor_id,
        "note": tr.note,
        "at": iso(tr.at),
    }


def service_request_json(
    sr: ServiceRequest, *, transitions: list[ServiceRequestTransition] | None = None
) -> dict[str, Any]:
    """A service request, with its history when given."""
    body: dict[str, Any] = {
        "id": sr.id,
        "customer_id": sr.customer_id,
        "interaction_id": sr.interaction_id,
        "title": sr.title,
        "description": sr.description,
        "status": sr.status,
        "created_by_id": sr.created_by_id,
        "assigned_to_id": sr.assigned_to_id,
        "csat": sr.csat,
        "feedback": sr.feedback,
        "created_at": iso(sr.created_at),
        "updated_at": iso(sr.updated_at),
    }
    if transitions is not None:
        body["transitions"] = [transition_json(t) for t in transitions]
    return body


def user_json(user: User) -> dict[str, Any]:
    """A user as an admin sees it (never the password hash)."""
    return {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "role": user.role,
        "is_active": user.is_active,
        "skills": user.skills,
        "capacities": user.capacities,
        "device": user.device,
        "created_at": iso(user.created_at),
        "updated_at": iso(user.updated_at),
    }


def audit_json(entry: AuditEntry) -> dict[str, Any]:
    """One audit log entry."""
    return {
        "id": entry.id,
        "at": iso(entry.at),
        "actor_id": entry.actor_id,
        "actor": entry.actor,
        "action": entry.action,
        "entity": entry.entity,
        "entity_id": entry.entity_id,
        "details": entry.details,
    }
