-- over_allocated: per CAL type, across every license server and agreement, the holders in use
-- at or above some level exceed the purchased CALs whose rights reach that level. One finding
-- per CAL type, at the level where the excess is largest (the newest on a tie).
-- Why it matters: this is the licence breach. CALs belong to the organisation, not to a
-- license server, so use is counted once per holder across the estate, at the newest level it
-- uses, and set against every purchase whose ceiling (downgrade and Software Assurance rights)
-- reaches that level: a valid assignment of CALs to holders exists only when no level is short.
WITH use_at_or_above AS (
    SELECT l.cal_type, l.level, COUNT(h.holder) AS in_use
    FROM estate_levels l
    LEFT JOIN holders h ON h.cal_type = l.cal_type AND h.level >= l.level
    GROUP BY l.cal_type, l.level
),
rights_at_or_above AS (
    SELECT l.cal_type, l.level, COALESCE(SUM(p.quantity), 0) AS rights,
           array_agg(p.id ORDER BY p.seq) FILTER (WHERE p.id IS NOT NULL) AS purchase_ids
    FROM estate_levels l
    LEFT JOIN purchases p ON p.cal_type = l.cal_type AND p.ceiling >= l.level
    GROUP BY l.cal_type, l.level
),
excess AS (
    SELECT u.cal_type, u.level, u.in_use, r.rights, u.in_use - r.rights AS excess,
           r.purchase_ids,
           ROW_NUMBER() OVER (
               PARTITION BY u.cal_type ORDER BY u.in_use - r.rights DESC, u.level DESC
           ) AS worst
    FROM use_at_or_above u
    JOIN rights_at_or_above r ON r.cal_type = u.cal_type AND r.level = u.level
)
SELECT
    'over_allocated' AS rule,
    'error' AS severity,
    e.cal_type AS subject,
    concat(e.in_use, ' ', CASE WHEN e.cal_type = 'per_user' THEN 'users' ELSE 'devices' END,
           ' are in use at level ', e.level, ' or newer, but the purchases whose rights reach it ',
           'cover ', e.rights, ' (', e.excess, ' short)') AS message,
    e.excess AS quantity,
    e.level,
    e.in_use,
    e.rights,
    e.cal_type,
    array_slice(COALESCE(e.purchase_ids, []), 1, 20) AS events
FROM excess e
WHERE e.worst = 1 AND e.excess > 0
ORDER BY subject
