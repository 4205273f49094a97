-- Each worker heartbeat records the build it runs (commit; the version column was there) and the
-- image the operator pinned its pod to (IMAGE_REF and its digest), so the components view answers
-- "is it running the new code?" per instance.
-- Expand-only: nullable columns. An older binary's heartbeat leaves them as they were; its pods
-- have other names (a rollout makes new pods), so their rows start empty.
ALTER TABLE component_heartbeats
    ADD COLUMN commit text,
    ADD COLUMN image_ref text,
    ADD COLUMN image_digest text;
