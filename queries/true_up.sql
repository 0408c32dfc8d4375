-- true_up: the use to order for, per true-up year, CAL type and level (RULES.md, "Reports").
-- Years run from the agreement's anniversary to the next, the last ending at the judged time.
-- peak_in_use: the largest number of holders in use at or above the level during the year,
-- and peak_at when it was first reached; rights: purchased CALs of every agreement whose rights
-- reach the level at the year's end; peak_installed: installed CALs whose requirement is at or
-- above the level, for information only (packs are not use); shortfall: peak_in_use - rights,
-- not below 0; order: on the newest level with a shortfall, the largest shortfall of that type
-- and year (bought at that level it covers every level), 0 elsewhere.
-- The caltrail binary keeps the rows of one agreement: --agreement, else the default one.
WITH grid AS (
    SELECT y.agreement, y.period_start, y.period_end, y.through_end, l.cal_type, l.level
    FROM true_up_years y CROSS JOIN estate_levels l
),
-- Peaks depend on a year's bounds, not on its agreement: each distinct year is judged once,
-- however many agreements share it.
spans AS (
    SELECT DISTINCT y.period_start, y.period_end, y.through_end, l.cal_type, l.level
    FROM true_up_years y CROSS JOIN estate_levels l
),
use_steps AS (
    SELECT cal_type, level, "at" AS from_at, in_use AS value,
           LEAD("at") OVER (PARTITION BY cal_type, level ORDER BY "at") AS to_at
    FROM in_use_changes
),
installed_steps AS (
    SELECT cal_type, level, "at" AS from_at, installed AS value,
           LEAD("at") OVER (PARTITION BY cal_type, level ORDER BY "at") AS to_at
    FROM installed_changes
),
rights_steps AS (
    SELECT cal_type, level, "at" AS from_at, rights AS value,
           LEAD("at") OVER (PARTITION BY cal_type, level ORDER BY "at") AS to_at
    FROM rights_changes
),
-- The steps each year sees: those that start before its end (at its end, for the last year,
-- which ends at the judged time) and end after its start. The peak is the largest value, and
-- it was reached at the earliest moment it held: aggregates, so that no year's steps are
-- sorted or kept.
use_in_year AS (
    SELECT g.period_start, g.period_end, g.through_end, g.cal_type, g.level,
           MAX(s.value) AS value,
           first_value(GREATEST(s.from_at, g.period_start)
                       ORDER BY s.value DESC, GREATEST(s.from_at, g.period_start)) AS reached_at
    FROM spans g
    JOIN use_steps s
      ON s.cal_type = g.cal_type AND s.level = g.level
     AND (s.from_at < g.period_end OR (g.through_end AND s.from_at = g.period_end))
     AND (s.to_at IS NULL OR s.to_at > g.period_start)
    GROUP BY g.period_start, g.period_end, g.through_end, g.cal_type, g.level
),
installed_in_year AS (
    SELECT g.period_start, g.period_end, g.through_end, g.cal_type, g.level,
           MAX(s.value) AS peak_installed
    FROM spans g
    JOIN installed_steps s
      ON s.cal_type = g.cal_type AND s.level = g.level
     AND (s.from_at < g.period_end OR (g.through_end AND s.from_at = g.period_end))
     AND (s.to_at IS NULL OR s.to_at > g.period_start)
    GROUP BY g.period_start, g.period_end, g.through_end, g.cal_type, g.level
),
rights_at_end AS (
    SELECT g.period_start, g.period_end, g.through_end, g.cal_type, g.level, s.value AS rights
    FROM spans g
    JOIN rights_steps s
      ON s.cal_type = g.cal_type AND s.level = g.level
     AND s.from_at <= g.period_end AND (s.to_at IS NULL OR s.to_at > g.period_end)
),
rows AS (
    SELECT g.agreement, g.period_start, g.period_end, g.cal_type, g.level,
           COALESCE(u.value, 0) AS peak_in_use,
           COALESCE(u.reached_at, g.period_start) AS peak_at,
           COALESCE(r.rights, 0) AS rights,
           COALESCE(i.peak_installed, 0) AS peak_installed,
           GREATEST(COALESCE(u.value, 0) - COALESCE(r.rights, 0), 0) AS shortfall
    FROM grid g
    LEFT JOIN use_in_year u
      ON u.period_start = g.period_start AND u.period_end = g.period_end
     AND u.through_end = g.through_end AND u.cal_type = g.cal_type AND u.level = g.level
    LEFT JOIN rights_at_end r
      ON r.period_start = g.period_start AND r.period_end = g.period_end
     AND r.through_end = g.through_end AND r.cal_type = g.cal_type AND r.level = g.level
    LEFT JOIN installed_in_year i
      ON i.period_start = g.period_start AND i.period_end = g.period_end
     AND i.through_end = g.through_end AND i.cal_type = g.cal_type AND i.level = g.level
),
marked AS (
    SELECT r.*,
           MAX(shortfall) OVER (PARTITION BY agreement, period_start, cal_type) AS largest,
           MAX(CASE WHEN shortfall > 0 THEN level END)
               OVER (PARTITION BY agreement, period_start, cal_type) AS order_level
    FROM rows r
)
SELECT
    agreement,
    period_start,
    period_end,
    cal_type,
    level,
    peak_in_use,
    peak_at,
    rights,
    peak_installed,
    shortfall,
    CASE WHEN level = order_level THEN largest ELSE 0 END AS "order"
FROM marked
ORDER BY agreement, period_start, cal_type, level DESC
