package clickstream.spark;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.Serializable;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Collections;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import org.apache.spark.api.java.function.FlatMapFunction;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.unsafe.Platform;
import org.apache.spark.unsafe.types.UTF8String;

/**
 * Everything a micro-batch adds to Redis, from one pass over its records in the tasks that read them.
 *
 * <p>Views per (page, window), invalid records per reason, the newest valid event time, and per window
 * the users as the 16,384 registers of a Redis HyperLogLog, filled exactly as {@code PFADD} fills them
 * (same MurmurHash64A, seed, register index and rank). Each task keeps a small partial and the driver
 * merges them: no shuffle, and no row per (window, user) to move, where an aggregation in SQL needed
 * both. The driver then sends each window's registers as a dense HyperLogLog for {@code PFMERGE}, which
 * gives the same key, bit for bit, as adding the user ids one by one.
 *
 * <p>Input columns, by position: reject_reason, page, window_start_ms, ts_ms, user_id (string, string,
 * bigint, bigint, string). A row with a reason is invalid and only counted under it, and under its
 * window when it has one: for an invalid record, the minute it reached Kafka (null when unknown).
 */
public final class BatchTally implements Serializable {
  private static final long serialVersionUID = 1L;

  /** Redis's HyperLogLog: 2^14 registers of 6 bits, after a 16-byte header. */
  static final int INDEX_BITS = 14;

  static final int REGISTERS = 1 << INDEX_BITS;
  static final int HEADER_BYTES = 16;
  static final int DENSE_BYTES = HEADER_BYTES + REGISTERS * 6 / 8;
  private static final long SEED = 0xadc83b19L;
  private static final boolean LITTLE_ENDIAN = ByteOrder.nativeOrder() == ByteOrder.LITTLE_ENDIAN;

  private final HashMap<Long, HashMap<UTF8String, long[]>> views = new HashMap<>();
  private final HashMap<Long, byte[]> registers = new HashMap<>();
  private final HashMap<String, long[]> invalid = new HashMap<>();
  private final HashMap<Long, HashMap<String, long[]>> invalidByWindow = new HashMap<>();
  private long records;
  private long newestMs = Long.MIN_VALUE;

  // The window of the previous row and its tables: a batch's rows mostly share one or two windows.
  private transient long lastWindow = Long.MIN_VALUE;
  private transient HashMap<UTF8String, long[]> lastPages;
  private transient byte[] lastRegisters;

  /** Tallies {@code records} (columns as above) in one Spark job with no shuffle. */
  public static BatchTally of(Dataset<Row> records) {
    List<BatchTally> partials =
        records.queryExecution().toRdd().toJavaRDD().mapPartitions(new PartitionTally()).collect();
    BatchTally total = new BatchTally();
    for (BatchTally partial : partials) {
      total.merge(partial);
    }
    return total;
  }

  /** The task-side half: one partial per partition. */
  private static final class PartitionTally implements FlatMapFunction<Iterator<InternalRow>, BatchTally> {
    private static final long serialVersionUID = 1L;

    @Override
    public Iterator<BatchTally> call(Iterator<InternalRow> rows) {
      BatchTally tally = new BatchTally();
      while (rows.hasNext()) {
        tally.add(rows.next());
      }
      return Collections.singletonList(tally).iterator();
    }
  }

  void add(InternalRow row) {
    records++;
    if (!row.isNullAt(0)) {
      String reason = row.getUTF8String(0).toString();
      invalid.computeIfAbsent(reason, k -> new long[1])[0]++;
      if (!row.isNullAt(2)) {
        invalidByWindow
            .computeIfAbsent(row.getLong(2), k -> new HashMap<>())
            .computeIfAbsent(reason, k -> new long[1])[0]++;
      }
      return;
    }
    long window = row.getLong(2);
    if (window != lastWindow || lastPages == null) {
      lastWindow = window;
      lastPages = views.computeIfAbsent(window, k -> new HashMap<>());
      lastRegisters = registers.computeIfAbsent(window, k -> new byte[REGISTERS]);
    }
    newestMs = Math.max(newestMs, row.getLong(3));
    UTF8String page = row.getUTF8String(1);
    long[] count = lastPages.get(page);
    if (count == null) {
      count = new long[1];
      lastPages.put(page.clone(), count); // the row's bytes are reused for the next row
    }
    count[0]++;
    UTF8String user = row.getUTF8String(4);
    long hash = murmurHash64A(user.getBaseObject(), user.getBaseOffset(), user.numBytes());
    int index = (int) (hash & (REGISTERS - 1));
    byte rank = (byte) (Long.numberOfTrailingZeros((hash >>> INDEX_BITS) | (1L << (64 - INDEX_BITS))) + 1);
    if (rank > lastRegisters[index]) {
      lastRegisters[index] = rank;
    }
  }

  void merge(BatchTally other) {
    records += other.records;
    newestMs = Math.max(newestMs, other.newestMs);
    other.invalid.forEach((reason, n) -> invalid.computeIfAbsent(reason, k -> new long[1])[0] += n[0]);
    other.invalidByWindow.forEach(
        (window, reasons) -> {
          HashMap<String, long[]> mine = invalidByWindow.computeIfAbsent(window, k -> new HashMap<>());
          reasons.forEach((reason, n) -> mine.computeIfAbsent(reason, k -> new long[1])[0] += n[0]);
        });
    other.views.forEach(
        (window, pages) -> {
          HashMap<UTF8String, long[]> mine = views.computeIfAbsent(window, k -> new HashMap<>());
          pages.forEach((page, n) -> mine.computeIfAbsent(page, k -> new long[1])[0] += n[0]);
        });
    other.registers.forEach(
        (window, theirs) -> {
          byte[] mine = registers.computeIfAbsent(window, k -> new byte[REGISTERS]);
          for (int i = 0; i < REGISTERS; i++) {
            mine[i] = (byte) Math.max(mine[i], theirs[i]);
          }
        });
  }

  /**
   * The figures as JSON, for Python: {"records": n, "newest_ms": (null without a valid record),
   * "invalid": {reason: n}, "invalid_windows": [{"start_ms": ms, "reasons": {reason: n}}, ...],
   * "windows": [{"start_ms": ms, "views": {page: n}, "users": base64 of the window's dense
   * HyperLogLog}, ...]}. One string: py4j moves it far faster than byte arrays.
   */
  public String summaryJson() {
    ObjectMapper mapper = new ObjectMapper();
    ObjectNode out = mapper.createObjectNode();
    out.put("records", records);
    if (newestMs == Long.MIN_VALUE) {
      out.putNull("newest_ms");
    } else {
      out.put("newest_ms", newestMs);
    }
    ObjectNode reasons = out.putObject("invalid");
    invalid.forEach((reason, n) -> reasons.put(reason, n[0]));
    ArrayNode invalidWindows = out.putArray("invalid_windows");
    invalidByWindow.forEach(
        (start, byReason) -> {
          ObjectNode window = invalidWindows.addObject();
          window.put("start_ms", start);
          ObjectNode counts = window.putObject("reasons");
          byReason.forEach((reason, n) -> counts.put(reason, n[0]));
        });
    ArrayNode windows = out.putArray("windows");
    for (Map.Entry<Long, HashMap<UTF8String, long[]>> entry : views.entrySet()) {
      ObjectNode window = windows.addObject();
      window.put("start_ms", entry.getKey());
      ObjectNode pages = window.putObject("views");
      entry.getValue().forEach((page, n) -> pages.put(page.toString(), n[0]));
      window.put("users", dense(registers.get(entry.getKey())));
    }
    try {
      return mapper.writeValueAsString(out);
    } catch (JsonProcessingException e) {
      throw new IllegalStateException(e);
    }
  }

  /**
   * Registers as a Redis string in HyperLogLog's dense encoding ("HYLL", encoding 0, the cached
   * cardinality marked stale, then 6-bit registers, least significant bits first), ready for PFMERGE.
   */
  static byte[] dense(byte[] regs) {
    byte[] out = new byte[DENSE_BYTES];
    byte[] magic = "HYLL".getBytes(StandardCharsets.US_ASCII);
    System.arraycopy(magic, 0, out, 0, magic.length);
    out[15] = (byte) 0x80; // cached cardinality invalid: Redis recounts
    for (int i = 0; i < REGISTERS; i++) {
      int value = regs[i] & 0x3f;
      int bit = i * 6;
      int at = HEADER_BYTES + (bit >>> 3);
      int shift = bit & 7;
      out[at] |= (byte) (value << shift);
      if (shift > 2) {
        out[at + 1] |= (byte) (value >>> (8 - shift));
      }
    }
    return out;
  }

  /** Redis's MurmurHash64A (hyperloglog.c) over {@code length} bytes at {@code base + offset}. */
  static long murmurHash64A(Object base, long offset, int length) {
    final long m = 0xc6a4a7935bd1e995L;
    final int r = 47;
    long h = SEED ^ (length * m);
    int blocks = length >>> 3;
    for (int i = 0; i < blocks; i++) {
      long k = Platform.getLong(base, offset + i * 8L);
      if (!LITTLE_ENDIAN) {
        k = Long.reverseBytes(k);
      }
      k *= m;
      k ^= k >>> r;
      k *= m;
      h ^= k;
      h *= m;
    }
    int tail = length & 7;
    if (tail > 0) {
      long tailStart = offset + (blocks << 3);
      for (int i = tail - 1; i >= 0; i--) {
        h ^= (Platform.getByte(base, tailStart + i) & 0xffL) << (8 * i);
      }
      h *= m;
    }
    h ^= h >>> r;
    h *= m;
    h ^= h >>> r;
    return h;
  }
}
