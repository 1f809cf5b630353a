-- 002_secrets: per-workspace and platform-wide secrets, sealed by the secrets layer (crypt.c).
-- encrypted_value holds raw bytes; encryption_version says how to open them (crypt.h:
-- 0 plaintext legacy, 1 reference AES-GCM, 2 AES-GCM with row-bound AAD, 3 KMS envelope).

CREATE TABLE workspace_secrets (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id       uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    key                text NOT NULL,
    encrypted_value    bytea NOT NULL,
    encryption_version integer NOT NULL DEFAULT 0,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (workspace_id, key)
);
-- Rotation finds rows still on an old version without scanning everything.
CREATE INDEX idx_workspace_secrets_version ON workspace_secrets (encryption_version);

CREATE TABLE global_secrets (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    key                text NOT NULL UNIQUE,
    encrypted_value    bytea NOT NULL,
    encryption_version integer NOT NULL DEFAULT 0,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
