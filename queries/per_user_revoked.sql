-- per_user_revoked: a cal.revoked of a per-user CAL. One finding per record.
-- Why it matters: per-user CALs cannot be revoked (only per-device ones can), so the record is
-- wrong; it is not applied, and the CAL stays active. Left alone, it would hide over-use.
SELECT
    'per_user_revoked' AS rule,
    'error' AS severity,
    r.holder AS subject,
    concat('a revocation of the per-user CAL of ', r.holder, ' from ', r.keypack, ' on ',
           r.server, ' was recorded on ', CAST(CAST(r."at" AS DATE) AS VARCHAR),
           '; per-user CALs cannot be revoked, so it was not applied') AS message,
    1 AS quantity,
    r.seq,
    r."at",
    r.server,
    r.keypack,
    r.holder,
    [r.id] AS events
FROM revocations r
WHERE r.cal_type = 'per_user'
ORDER BY r.seq
