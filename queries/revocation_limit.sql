-- revocation_limit: on a license server, more per-device CALs of one version were revoked
-- within 90 days than allowed: max(1, 20% of the per-device CALs of that version installed
-- there at the time). One finding per server and version: its worst 90-day window.
-- Why it matters: revocation is limited so that per-device CALs are not shuffled between
-- devices; revoking beyond the limit uses CALs that are not free yet.
WITH revoked AS (
    SELECT seq, id, "at", server, product_version, installed_on_server
    FROM revocations
    WHERE cal_type = 'per_device' AND product_version IS NOT NULL
),
windows AS (
    SELECT r.seq, r."at", r.server, r.product_version, r.installed_on_server,
           COUNT(*) AS revoked_in_90_days,
           array_agg(p.id ORDER BY p.seq) AS ids
    FROM revoked r
    JOIN revoked p
      ON p.server = r.server
     AND p.product_version = r.product_version
     AND p."at" > r."at" - INTERVAL '90 days'
     AND p."at" <= r."at"
    GROUP BY r.seq, r."at", r.server, r.product_version, r.installed_on_server
),
over_limit AS (
    SELECT *,
           GREATEST(1, installed_on_server / 5) AS revocation_limit,
           ROW_NUMBER() OVER (
               PARTITION BY server, product_version
               ORDER BY revoked_in_90_days - GREATEST(1, installed_on_server / 5) DESC, seq
           ) AS worst
    FROM windows
    WHERE revoked_in_90_days > GREATEST(1, installed_on_server / 5)
)
SELECT
    'revocation_limit' AS rule,
    'warning' AS severity,
    server AS subject,
    concat(server, ' revoked ', revoked_in_90_days, ' ', product_version,
           ' per-device CALs in the 90 days to ', CAST(CAST("at" AS DATE) AS VARCHAR), '; the limit is ',
           revocation_limit, ' (', installed_on_server, ' installed)') AS message,
    revoked_in_90_days - revocation_limit AS quantity,
    revoked_in_90_days,
    revocation_limit,
    installed_on_server,
    product_version,
    "at",
    array_slice(ids, 1, 20) AS events
FROM over_limit
WHERE worst = 1
ORDER BY subject, product_version
