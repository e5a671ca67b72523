package clickstream.spark;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.StreamReadConstraints;
import com.fasterxml.jackson.core.StreamReadFeature;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.api.java.UDF2;

/**
 * Parses one Kafka record's bytes into the event's fields and judges its JSON shape, in one pass.
 *
 * <p>The rules are not written here: the second argument is the field list of the Python schema module
 * ({@code clickstream.spark.transforms.PARSE_SPEC}, built from {@code clickstream.schema.FIELDS}), so the
 * schema stays in one place. This class judges what needs the parsed document, in the Python validator's
 * order: not JSON (including invalid UTF-8, a byte order mark, NaN, repeated keys and nesting deeper than the
 * spec's {@code depth}), not an object, unknown schema version, then per field a missing required field or a
 * wrong JSON type. No input makes it throw: every failure is a verdict. Everything after that (timestamps, page
 * and text limits, property values) is judged by Spark expressions from the fields returned here.
 *
 * <p>Returns struct(reason, detail, event_id, schema_version, user_id, session_id, page, referrer,
 * user_agent, ts_long, ts_text, properties_ok); {@code reason} is null when the shape is right. A lone
 * surrogate (from an escape such as {@code "\\ud800"}) in a returned text field comes back as U+0000, so the
 * control-character rule that follows rejects it as the Python validator does: UTF-8 cannot carry it.
 */
public final class ParseEvent implements UDF2<byte[], String, Row> {
  private static final long serialVersionUID = 1L;
  private static final String[] OUTPUT_FIELDS = {
    "event_id", "schema_version", "user_id", "session_id", "page", "referrer", "user_agent"
  };

  /** One field of the spec: its name, the JSON types it may have, and whether it is required. */
  private static final class Field {
    final String name;
    final Set<String> types;
    final boolean required;

    Field(String name, Set<String> types, boolean required) {
      this.name = name;
      this.types = types;
      this.required = required;
    }
  }

  /** A parsed spec: fields in order, the schema versions this reader knows, and a JSON reader for them. */
  private static final class Spec {
    final List<Field> fields = new ArrayList<>();
    final Map<String, Field> byName = new HashMap<>();
    final Set<Long> versions = new HashSet<>();
    final String versionsText;
    final JsonFactory json;

    Spec(String text) {
      // "versions=1,2;depth=32;event_id:string:required;referrer:string|null:optional;..."
      String[] parts = text.split(";");
      String versionList = parts[0].substring("versions=".length());
      for (String v : versionList.split(",")) {
        versions.add(Long.parseLong(v.trim()));
      }
      versionsText = "[" + versionList.replace(",", ", ") + "]";
      int depth = Integer.parseInt(parts[1].substring("depth=".length()));
      // Jackson's own limits would otherwise judge what Python accepts (a number of 1,001 digits): lift
      // them past any record's size, and keep only the nesting depth the schema sets.
      json =
          JsonFactory.builder()
              .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
              .streamReadConstraints(
                  StreamReadConstraints.builder()
                      .maxNestingDepth(depth)
                      .maxNumberLength(Integer.MAX_VALUE)
                      .maxStringLength(Integer.MAX_VALUE)
                      .maxNameLength(Integer.MAX_VALUE)
                      .build())
              .build();
      for (int i = 2; i < parts.length; i++) {
        String[] f = parts[i].split(":");
        Field field = new Field(f[0], new HashSet<>(List.of(f[1].split("\\|"))), f[2].equals("required"));
        fields.add(field);
        byName.put(field.name, field);
      }
    }
  }

  private transient String specText;
  private transient Spec spec;

  private Spec spec(String text) {
    if (spec == null || !text.equals(specText)) {
      spec = new Spec(text);
      specText = text;
    }
    return spec;
  }

  @Override
  public Row call(byte[] value, String specText) {
    if (value == null) {
      return rejected("not_json", "not a JSON document (or not UTF-8)");
    }
    // Records are UTF-8 JSON. Jackson would read UTF-16 or UTF-32 too (a zero byte or their byte order
    // mark in the first two bytes gives them away, and cannot start UTF-8 JSON).
    if (value.length >= 2 && (value[0] == 0 || value[1] == 0 || (value[0] & 0xFE) == 0xFE)) {
      return rejected("not_json", "not UTF-8");
    }
    String utf8Problem = utf8Problem(value);
    if (utf8Problem != null) {
      return rejected("not_json", utf8Problem);
    }
    Spec s = spec(specText);
    Map<String, Object> found = new HashMap<>();
    Map<String, String> types = new HashMap<>();
    boolean propertiesOk = true;
    String topLevel;
    try (JsonParser p = s.json.createParser(value)) {
      JsonToken root = p.nextToken();
      if (root == null) {
        return rejected("not_json", "empty document");
      }
      if (root == JsonToken.START_OBJECT) {
        topLevel = "object";
        for (JsonToken t = p.nextToken(); t == JsonToken.FIELD_NAME; t = p.nextToken()) {
          String name = p.currentName();
          JsonToken v = p.nextToken();
          Field field = s.byName.get(name);
          if (field == null) {
            p.skipChildren();
            continue;
          }
          String type = jsonType(p, v);
          types.put(name, type);
          if (v == JsonToken.START_OBJECT) {
            for (JsonToken k = p.nextToken(); k == JsonToken.FIELD_NAME; k = p.nextToken()) {
              JsonToken pv = p.nextToken();
              if (pv != JsonToken.VALUE_STRING) {
                propertiesOk = false;
                p.skipChildren();
              }
            }
          } else if (v == JsonToken.START_ARRAY) {
            p.skipChildren();
          } else if (type.equals("string")) {
            found.put(name, withoutLoneSurrogates(p.getText()));
          } else if (type.equals("int")) {
            found.put(name, p.getLongValue());
          }
        }
      } else {
        topLevel = root == JsonToken.START_ARRAY ? "array" : jsonType(p, root);
        p.skipChildren();
      }
      if (p.nextToken() != null) {
        return rejected("not_json", "extra data after the JSON document");
      }
    } catch (IOException | RuntimeException e) {  // a verdict, never a failed task
      String message = String.valueOf(e.getMessage()).split("\n", 2)[0];
      return rejected("not_json", message.length() > 200 ? message.substring(0, 200) : message);
    }
    if (!topLevel.equals("object")) {
      return rejected("not_an_object", "top level is " + topLevel);
    }
    Object version = found.get("schema_version");
    if (version instanceof Long && !s.versions.contains(version)) {
      return rejected(
          "unknown_schema_version", "schema_version " + version + "; this reader knows " + s.versionsText);
    }
    for (Field field : s.fields) {
      String type = types.get(field.name);
      if (type == null) {
        if (field.required) {
          return rejected("missing_field", field.name + " is missing");
        }
      } else if (!field.types.contains(type)) {
        return rejected("wrong_type", field.name + " is " + type + "; expected " + String.join("/", field.types));
      }
    }
    Object[] out = new Object[12];
    for (int i = 0; i < OUTPUT_FIELDS.length; i++) {
      out[2 + i] = found.get(OUTPUT_FIELDS[i]);
    }
    Object ts = found.get("ts");
    out[9] = ts instanceof Long ? ts : null;
    out[10] = ts instanceof String ? ts : null;
    out[11] = propertiesOk;
    return RowFactory.create(out);
  }

  /** Why {@code value} is not strict UTF-8 (no BOM, no overlong forms, no encoded surrogates), or null. */
  private static String utf8Problem(byte[] value) {
    boolean ascii = true;
    for (byte b : value) {
      if (b < 0) {
        ascii = false;
        break;
      }
    }
    if (ascii) {
      return null;
    }
    if (value.length >= 3 && (value[0] & 0xFF) == 0xEF && (value[1] & 0xFF) == 0xBB && (value[2] & 0xFF) == 0xBF) {
      return "starts with a byte order mark";
    }
    try {
      StandardCharsets.UTF_8
          .newDecoder()
          .onMalformedInput(CodingErrorAction.REPORT)
          .onUnmappableCharacter(CodingErrorAction.REPORT)
          .decode(ByteBuffer.wrap(value));
      return null;
    } catch (CharacterCodingException e) {
      return "not UTF-8: " + e.getMessage();
    }
  }

  /** {@code text} with each unpaired surrogate replaced by U+0000 (see the class comment). */
  private static String withoutLoneSurrogates(String text) {
    char[] chars = null;
    for (int i = 0; i < text.length(); i++) {
      char c = text.charAt(i);
      if (!Character.isSurrogate(c)) {
        continue;
      }
      if (Character.isHighSurrogate(c) && i + 1 < text.length() && Character.isLowSurrogate(text.charAt(i + 1))) {
        i++;  // a pair: one code point
        continue;
      }
      if (chars == null) {
        chars = text.toCharArray();
      }
      chars[i] = 0;
    }
    return chars == null ? text : new String(chars);
  }

  /** The JSON type of the current value, in the spec's words; ints that do not fit in 64 bits are "bigint". */
  private static String jsonType(JsonParser p, JsonToken t) throws IOException {
    switch (t) {
      case VALUE_STRING:
        return "string";
      case VALUE_NUMBER_INT:
        JsonParser.NumberType n = p.getNumberType();
        return n == JsonParser.NumberType.INT || n == JsonParser.NumberType.LONG ? "int" : "bigint";
      case VALUE_NUMBER_FLOAT:
        return "float";
      case VALUE_TRUE:
      case VALUE_FALSE:
        return "bool";
      case VALUE_NULL:
        return "null";
      case START_OBJECT:
        return "object";
      case START_ARRAY:
        return "array";
      default:
        return t.toString();
    }
  }

  private static Row rejected(String reason, String detail) {
    Object[] out = new Object[12];
    out[0] = reason;
    out[1] = detail;
    return RowFactory.create(out);
  }
}
