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
-- Each revocation with the count of those of its server and version in the 90 days to it:
-- after the one exactly 90 days earlier, up to and including those at the same time. Times
-- are whole microseconds, so "after t - 90 days" is "at or after t - 90 days + 1 µs".
windows AS (
    SELECT seq, "at", server, product_version, installed_on_server,
           COUNT(*) OVER (
               PARTITION BY server, product_version
               ORDER BY "at"
               RANGE BETWEEN INTERVAL '89 days 23 hours 59 minutes 59.999999 seconds' PRECEDING
                         AND CURRENT ROW
           ) AS revoked_in_90_days
    FROM revoked
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
),
-- The ids of the revocations in each finding's window, read only for the worst windows.
worst_windows AS (
    SELECT w.seq, w."at", w.server, w.product_version, w.installed_on_server,
           w.revoked_in_90_days, w.revocation_limit,
           array_agg(p.id ORDER BY p.seq) AS ids
    FROM over_limit w
    JOIN revoked p
      ON p.server = w.server
     AND p.product_version = w.product_version
     AND p."at" > w."at" - INTERVAL '90 days'
     AND p."at" <= w."at"
    WHERE w.worst = 1
    GROUP BY w.seq, w."at", w.server, w.product_version, w.installed_on_server,
             w.revoked_in_90_days, w.revocation_limit
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
FROM worst_windows
ORDER BY subject, product_version
