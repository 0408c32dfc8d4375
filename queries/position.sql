-- position: the licence position at the judged time, the first table an auditor asks for. One
-- row per CAL type and level that has any purchase, pack or holder, newest level first.
-- purchased: bought of exactly that level; rights: purchased CALs whose rights reach the level
-- or newer; installed: packs whose requirement is that level; required: installed CALs whose
-- requirement is that level or newer; in_use: holders whose newest active CAL is of that level;
-- in_use_at_or_above; temporary: of those, devices on temporary CALs only; headroom:
-- rights - in_use_at_or_above, negative when short (RULES.md, "Reports").
WITH purchased AS (
    SELECT cal_type, level, SUM(quantity) AS purchased FROM purchases GROUP BY cal_type, level
),
rights AS (
    SELECT l.cal_type, l.level, COALESCE(SUM(p.quantity), 0) AS rights
    FROM estate_levels l
    LEFT JOIN purchases p ON p.cal_type = l.cal_type AND p.ceiling >= l.level
    GROUP BY l.cal_type, l.level
),
installed AS (
    SELECT cal_type, requirement AS level, SUM(current_quantity) AS installed
    FROM keypacks GROUP BY cal_type, requirement
),
required AS (
    SELECT l.cal_type, l.level, COALESCE(SUM(k.current_quantity), 0) AS required
    FROM estate_levels l
    LEFT JOIN keypacks k ON k.cal_type = l.cal_type AND k.requirement >= l.level
    GROUP BY l.cal_type, l.level
),
in_use AS (
    SELECT cal_type, level, COUNT(*) AS in_use,
           SUM(CASE WHEN temporary THEN 1 ELSE 0 END) AS temporary
    FROM holders GROUP BY cal_type, level
),
in_use_at_or_above AS (
    SELECT l.cal_type, l.level, COUNT(h.holder) AS in_use_at_or_above
    FROM estate_levels l
    LEFT JOIN holders h ON h.cal_type = l.cal_type AND h.level >= l.level
    GROUP BY l.cal_type, l.level
)
SELECT
    l.cal_type,
    l.level,
    COALESCE(p.purchased, 0) AS purchased,
    r.rights,
    COALESCE(i.installed, 0) AS installed,
    q.required,
    COALESCE(u.in_use, 0) AS in_use,
    a.in_use_at_or_above,
    COALESCE(u.temporary, 0) AS temporary,
    r.rights - a.in_use_at_or_above AS headroom
FROM estate_levels l
JOIN rights r ON r.cal_type = l.cal_type AND r.level = l.level
JOIN required q ON q.cal_type = l.cal_type AND q.level = l.level
JOIN in_use_at_or_above a ON a.cal_type = l.cal_type AND a.level = l.level
LEFT JOIN purchased p ON p.cal_type = l.cal_type AND p.level = l.level
LEFT JOIN installed i ON i.cal_type = l.cal_type AND i.level = l.level
LEFT JOIN in_use u ON u.cal_type = l.cal_type AND u.level = l.level
ORDER BY l.cal_type, l.level DESC
