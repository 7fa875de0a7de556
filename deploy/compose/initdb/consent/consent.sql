-- The consent table flagsync reads (its contract columns) and three sample records, made up for trying things out.
-- Run by 10-flagsync.sh in the consent database; tests/deploy/test_compose.py reads it with flagsync's SQL source.
CREATE TABLE consent_records (
    record_id text PRIMARY KEY,
    person_id text,
    decision text,
    informed text,
    consented_by text,
    recorded_at timestamptz,
    expires_at timestamptz,
    case_status text,
    consent_version text,
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO consent_records (record_id, person_id, decision, informed, consented_by, recorded_at, case_status) VALUES
    ('RDEMO-0001', 'PDEMO0001', 'granted', 'yes', 'parent', now() - interval '30 days', 'open'),
    ('RDEMO-0002', 'PDEMO0002', 'granted', 'yes', 'young_person', now() - interval '20 days', 'open'),
    ('RDEMO-0003', 'PDEMO0003', 'refused', NULL, NULL, now() - interval '10 days', 'open');
