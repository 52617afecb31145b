-- RDMT store schema: one DDL for chDB and ClickHouse server. {db} is the database.
-- The three tables are the public SQL interface (docs/store.md).

CREATE DATABASE IF NOT EXISTS {db};

CREATE TABLE IF NOT EXISTS {db}.metrics
(
    run_id     String                    COMMENT 'Identifier of the run that computed the value',
    release    LowCardinality(String)    COMMENT 'Release name (live, or a reprocessing release)',
    monitor    LowCardinality(String)    COMMENT 'Monitor name, e.g. dark',
    detector   LowCardinality(String)    COMMENT 'WFI01..WFI18',
    kind       LowCardinality(String)    COMMENT 'Reference type (DARK) or Level-2 model type',
    optical_element LowCardinality(String) DEFAULT '' COMMENT 'meta.instrument.optical_element (FLAT..., images), empty if none',
    exposure_mode   LowCardinality(String) DEFAULT '' COMMENT 'MA table of DARK, READNOISE (MA<number>), empty if none',
    file_key   String                    COMMENT 'kind/detector[/optical_element][/exposure_mode]/file_time: the file content',
    file_time  DateTime64(3, 'UTC')      COMMENT 'meta.useafter (reference files) or exposure start (images)',
    source     String                    COMMENT 'Path or URI the file was read from',
    metric     LowCardinality(String)    COMMENT 'Metric name, e.g. dark_rate_mean',
    unit       LowCardinality(String)    COMMENT 'Unit of value',
    scale      Enum8('detector' = 1, 'amplifier' = 2, 'superpixel' = 3),
    cell       UInt16                    COMMENT '0 (detector), 1..32 (amplifier), 0..1023 (super-pixel, row-major)',
    value      Float64                   COMMENT 'NaN when the cell has no finite pixel',
    stored_at  DateTime64(3, 'UTC')      COMMENT 'When the row was written'
)
ENGINE = ReplacingMergeTree(stored_at)
ORDER BY (monitor, detector, metric, scale, cell, release, file_key, run_id);

CREATE TABLE IF NOT EXISTS {db}.evaluations
(
    run_id     String,
    release    LowCardinality(String),
    monitor    LowCardinality(String),
    detector   LowCardinality(String),
    kind       LowCardinality(String),
    optical_element LowCardinality(String) DEFAULT '',
    exposure_mode   LowCardinality(String) DEFAULT '',
    file_key   String,
    file_time  DateTime64(3, 'UTC'),
    source     String,
    metric     LowCardinality(String),
    scale      Enum8('detector' = 1, 'amplifier' = 2, 'superpixel' = 3),
    cell       UInt16,
    evaluator  LowCardinality(String)    COMMENT 'mission, soc, change or trend',
    status     Enum8('pass' = 1, 'incomplete' = 2, 'caution' = 3, 'fail' = 4),
    reference  Nullable(Float64)         COMMENT 'Limit (mission, soc), previous value (change) or history median (trend)',
    threshold  Nullable(Float64)         COMMENT 'Configured limit, tolerance or z limit',
    reason     String,
    stored_at  DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(stored_at)
ORDER BY (monitor, detector, metric, scale, cell, evaluator, release, file_key, run_id);

CREATE TABLE IF NOT EXISTS {db}.files
(
    run_id        String,
    release       LowCardinality(String),
    monitor       LowCardinality(String),
    detector      LowCardinality(String),
    kind          LowCardinality(String),
    optical_element LowCardinality(String) DEFAULT '',
    exposure_mode   LowCardinality(String) DEFAULT '',
    file_key      String,
    file_time     DateTime64(3, 'UTC'),
    source        String,
    exposure_type LowCardinality(String),
    n_metrics     UInt32                 COMMENT 'Rows written to metrics for this file and monitor',
    n_evaluations UInt32                 COMMENT 'Rows written to evaluations',
    n_fail        UInt32,
    n_caution     UInt32,
    status        Enum8('pass' = 1, 'incomplete' = 2, 'caution' = 3, 'fail' = 4) COMMENT 'Worst status',
    stored_at     DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(stored_at)
ORDER BY (monitor, detector, release, file_key, run_id);

-- Upgrade of a store written before the identity had an optical element and an exposure mode (both
-- empty in its rows, as for every file without them, so its file keys and histories stay valid).
-- A no-op on tables created above.
ALTER TABLE {db}.metrics ADD COLUMN IF NOT EXISTS optical_element LowCardinality(String) DEFAULT '' AFTER kind;
ALTER TABLE {db}.metrics ADD COLUMN IF NOT EXISTS exposure_mode LowCardinality(String) DEFAULT '' AFTER optical_element;
ALTER TABLE {db}.evaluations ADD COLUMN IF NOT EXISTS optical_element LowCardinality(String) DEFAULT '' AFTER kind;
ALTER TABLE {db}.evaluations ADD COLUMN IF NOT EXISTS exposure_mode LowCardinality(String) DEFAULT '' AFTER optical_element;
ALTER TABLE {db}.files ADD COLUMN IF NOT EXISTS optical_element LowCardinality(String) DEFAULT '' AFTER kind;
ALTER TABLE {db}.files ADD COLUMN IF NOT EXISTS exposure_mode LowCardinality(String) DEFAULT '' AFTER optical_element;

-- The pixel masks of the monitors that track pixel classes (Monitor.tracked_pixels: the dark's hot and
-- dead pixels), one row per file, run and class: what the next file of the same identity is compared with
-- (n_new_<class>, n_recovered_<class>; docs/pixel-changes.md). Written with the file's other rows, before
-- its files row (the commit marker). About 13 kB per full-size dark (hot and dead).
CREATE TABLE IF NOT EXISTS {db}.pixel_masks
(
    run_id          String,
    release         LowCardinality(String),
    monitor         LowCardinality(String),
    detector        LowCardinality(String),
    kind            LowCardinality(String),
    optical_element LowCardinality(String) DEFAULT '',
    exposure_mode   LowCardinality(String) DEFAULT '',
    file_key        String,
    file_time       DateTime64(3, 'UTC'),
    class           LowCardinality(String) COMMENT 'Pixel class, e.g. hot, dead (lower-case DQ flag name)',
    shape           String                 COMMENT 'rows x columns of the mask, e.g. 4096x4096',
    n_pixels        UInt32                 COMMENT 'Pixels in the class',
    data            String CODEC(ZSTD(1))  COMMENT 'base64 of the packed mask: 12-byte header, zlib(np.packbits(mask))',
    stored_at       DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(stored_at)
ORDER BY (monitor, detector, release, file_key, run_id, class);
