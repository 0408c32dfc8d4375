-- over_entitlement: per agreement and CAL type, the installed CALs whose requirement is at or
-- above some level exceed that agreement's purchases whose rights reach the level. One finding
-- per agreement and type, at the level where the excess is largest (the newest on a tie).
-- Why it matters: every installed pack must be backed by a purchase under its agreement. The
-- requirement of a pack is its downgraded_from, else its version, so a downgraded pack counts
-- against the newer purchase; migrated CALs still on the source count twice, since both
-- servers can issue them. Packs not_entitled reports (no purchase reaches them) are left out.
WITH packs AS (
    SELECT k.*
    FROM keypacks k
    WHERE k.current_quantity > 0
      AND EXISTS (
          SELECT 1 FROM purchases p
          WHERE p.agreement = k.agreement AND p.cal_type = k.cal_type
            AND p.ceiling >= k.requirement)
),
levels AS (
    SELECT DISTINCT agreement, cal_type, requirement AS level FROM packs
),
installed_at_or_above AS (
    SELECT l.agreement, l.cal_type, l.level, SUM(k.current_quantity) AS installed,
           COUNT(*) AS n_keypacks, array_agg(k.installed_id ORDER BY k.installed_seq) AS pack_ids
    FROM levels l
    JOIN packs k ON k.agreement = l.agreement AND k.cal_type = l.cal_type
                AND k.requirement >= l.level
    GROUP BY l.agreement, l.cal_type, l.level
),
rights_at_or_above AS (
    SELECT l.agreement, l.cal_type, l.level, COALESCE(SUM(p.quantity), 0) AS rights
    FROM levels l
    LEFT JOIN purchases p ON p.agreement = l.agreement AND p.cal_type = l.cal_type
                         AND p.ceiling >= l.level
    GROUP BY l.agreement, l.cal_type, l.level
),
excess AS (
    SELECT i.agreement, i.cal_type, i.level, i.installed, i.n_keypacks, i.pack_ids, r.rights,
           i.installed - r.rights AS excess,
           ROW_NUMBER() OVER (
               PARTITION BY i.agreement, i.cal_type
               ORDER BY i.installed - r.rights DESC, i.level DESC
           ) AS worst
    FROM installed_at_or_above i
    JOIN rights_at_or_above r
      ON r.agreement = i.agreement AND r.cal_type = i.cal_type AND r.level = i.level
)
SELECT
    'over_entitlement' AS rule,
    'error' AS severity,
    concat(e.agreement, '/', e.level, '/', e.cal_type) AS subject,
    concat(e.agreement, ': ', e.installed, ' ', replace(e.cal_type, '_', '-'),
           ' CALs that need level ', e.level, ' or newer are installed in ', e.n_keypacks,
           CASE WHEN e.n_keypacks = 1 THEN ' key pack' ELSE ' key packs' END,
           ', but its purchases give rights to ', e.rights, ' (', e.excess, ' over)') AS message,
    e.excess AS quantity,
    e.level,
    e.installed,
    e.rights,
    e.agreement,
    e.cal_type,
    array_slice(e.pack_ids, 1, 20) AS events
FROM excess e
WHERE e.worst = 1 AND e.excess > 0
ORDER BY subject
