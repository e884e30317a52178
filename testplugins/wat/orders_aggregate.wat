;; orders_aggregate.wat: the aggregate step of the orders workload (README.md,
;; Benchmarks), written by hand against ABI v1 (abi/ABI.md) with no SDK,
;; no WASI and no imports, as small as it goes. It gives what the Go SDK
;; version (testplugins/orders/aggregate) gives.
;;
;; aegis_aggregate counts the events of a group and window and sums their
;; "amount_cents": the first top-level member of that name (compared by its
;; text, escapes decoded, as the SDK's Lookup compares keys) of JSON data
;; that is an object, when its value is an integer within int64 (-?digits:
;; no fraction, no exponent), as strconv.ParseInt reads it. Any other event
;; fails alone with the SDK plugin's event error, code 2 "amount_cents is
;; missing or not an integer", and is not counted. Sums wrap around in int64,
;; as Go's do.
;; aegis_merge adds the counts and the sums of its two accumulators.
;; aegis_finish emits one event: type "order.window", source "aggregate",
;; no id and no time (the host assigns an id and uses the window end), no
;; metadata, and the JSON data
;;   {"key":KEY,"count":N,"sum_cents":S,"start":START,"end":END}
;; with the key escaped as the SDK's AppendString escapes it (\" \\ \b \f
;; \n \r \t, \u00xx for the other control characters, \u2028 and \u2029)
;; and the numbers in decimal.
;;
;; The accumulator is 16 bytes: the count, then the sum, each an i64,
;; little-endian: the bytes of the SDK's encoding of its state, so that the
;; two plugins' accumulators mix. An empty accumulator is a count and a sum
;; of 0. aegis_aggregate and aegis_merge always return 16 bytes.
;;
;; Like the module of ABI.md section 15 it trusts its input, which the ABI
;; guarantees to be well formed: a valid batch, a UTF-8 key, JSON data that
;; is valid JSON, and accumulators that it (or the SDK plugin) wrote. With
;; such input it reads no byte of the input buffer past the input, and it
;; never traps. It exports
;; no aegis_kinds (the three aggregate exports make it an aggregate) and no
;; aegis_init (so the host refuses a non-empty configuration at load, where
;; the SDK plugin, which takes none, refuses it in aegis_init).
;;
;; Memory map:
;;   [0, 49)      an event error without its index: code 2, length 41, the
;;                message; [8, 20) is also the key looked for, amount_cents
;;   [49, 69)     the digits of a number, made backwards
;;   [69, 109)    '}' and the text between the values of the finish data
;;   [128, 217)   the start of every finish result: the header (status 0,
;;                count 1, no error), the record header (no id, no time,
;;                kind 6 json, type 12 bytes, source 9; Size and DataLen
;;                are written later), "order.window", "aggregate", {"key":"
;;   [256, 512)   for each byte value, the letter of its short escape, or 0
;;   [512, 512+cap)  the input buffer, cap the size of aegis_alloc's last call
;;   [res, ...)   the result, res = 512+cap. Memory grows to hold what a
;;                result may need: 64 bytes at once, 53 more per event
;;                error, 6 per byte of the finish input and 256 more for a
;;                finish. Where it cannot grow, a store traps, which fails
;;                the instance (and aegis_alloc's region lies outside memory).
(module
  (memory (export "memory") 1)
  (global $res (mut i32) (i32.const 0))
  (global $c (mut i64) (i64.const 0)) ;; the count being built
  (global $s (mut i64) (i64.const 0)) ;; the sum being built

  (data (i32.const 0) "\02\00\00\00\29\00\00\00amount_cents is missing or not an integer")
  (data (i32.const 69) "}\22,\22count\22:,\22sum_cents\22:,\22start\22:,\22end\22:")
  (data (i32.const 132) "\01")
  (data (i32.const 172) "\06\00\00\00\0c\00\00\00\09\00\00\00\00\00\00\00order.windowaggregate{\22key\22:\22")
  (data (i32.const 264) "btn\00fr")
  (data (i32.const 290) "\22")
  (data (i32.const 348) "\5c")

  (func (export "aegis_abi_version") (result i32)
    (i32.const 0x00010000))

  ;; grow makes memory reach the address end, or leaves it when it cannot
  ;; (a negative page count is a huge one, which memory.grow refuses).
  (func $grow (param $end i32) (result i32)
    (memory.grow
      (i32.shr_s
        (i32.add (i32.sub (local.get $end) (i32.shl (memory.size) (i32.const 16)))
                 (i32.const 0xffff))
        (i32.const 16))))

  (func (export "aegis_alloc") (param $size i32) (result i32)
    (global.set $res (i32.add (local.get $size) (i32.const 512)))
    (drop (call $grow (i32.add (global.get $res) (i32.const 64))))
    (i32.const 512))

  ;; add adds the accumulator at q (u32 length, then the bytes) to $c and $s
  ;; and returns the address after it.
  (func $add (param $q i32) (result i32)
    (if (i32.load (local.get $q))
      (then
        (global.set $c (i64.add (global.get $c) (i64.load offset=4 (local.get $q))))
        (global.set $s (i64.add (global.get $s) (i64.load offset=12 (local.get $q))))))
    (i32.add (i32.add (local.get $q) (i32.const 4)) (i32.load (local.get $q))))

  ;; state loads the accumulator of the State at p into $c and $s and
  ;; returns the address after the State.
  (func $state (param $p i32) (result i32)
    (global.set $c (i64.const 0))
    (global.set $s (i64.const 0))
    (call $add (i32.add (i32.add (local.get $p) (i32.const 4)) (i32.load (local.get $p)))))

  ;; pack returns the result of n bytes at res: res<<32 | n.
  (func $pack (param $n i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (global.get $res)) (i64.const 32)) (i64.extend_i32_u (local.get $n))))

  ;; acc writes the header and the accumulator of an aggregate or merge
  ;; result whose event errors (53 bytes each) end at end.
  (func $acc (param $end i32) (result i64)
    (i64.store (global.get $res) (i64.const 0x1000000000)) ;; status 0, count 16
    (i32.store offset=8 (global.get $res)
      (i32.div_u (i32.sub (local.tee $end (i32.sub (local.get $end) (global.get $res))) (i32.const 28)) (i32.const 53)))
    (i64.store offset=12 (global.get $res) (global.get $c))
    (i64.store offset=20 (global.get $res) (global.get $s))
    (call $pack (local.get $end)))

  ;; ws skips JSON white space.
  (func $ws (param $p i32) (result i32)
    (loop $l
      (if (i32.le_u (i32.load8_u (local.get $p)) (i32.const 32))
        (then (local.set $p (i32.add (local.get $p) (i32.const 1))) (br $l))))
    (local.get $p))

  ;; str returns the address after the JSON string that starts at p, and
  ;; whether its text, escapes decoded, is amount_cents (at [8, 20)): j
  ;; follows the text in it, and goes to 21 for good at a difference.
  (func $str (param $p i32) (result i32 i32)
    (local $c i32) (local $j i32) (local $h i32)
    (local.set $j (i32.const 8))
    (loop $l
      (if (i32.ne (local.tee $c (i32.load8_u (local.tee $p (i32.add (local.get $p) (i32.const 1))))) (i32.const 34))
        (then
          (if (i32.eq (local.get $c) (i32.const 92))
            (then
              (local.set $c (i32.const 1)) ;; matches no letter: only \uXXXX can
              (if (i32.eq (i32.load8_u (local.tee $p (i32.add (local.get $p) (i32.const 1)))) (i32.const 117))
                (then
                  ;; the 1 reaches bit 16 after 4 digits; a hex digit's value
                  ;; is its low 4 bits, plus 9 for a letter
                  (loop $x
                    (local.set $h (i32.load8_u (local.tee $p (i32.add (local.get $p) (i32.const 1)))))
                    (br_if $x (i32.lt_u
                      (local.tee $c (i32.or (i32.shl (local.get $c) (i32.const 4))
                        (i32.add (i32.and (local.get $h) (i32.const 15))
                                 (i32.mul (i32.shr_u (local.get $h) (i32.const 6)) (i32.const 9)))))
                      (i32.const 0x10000))))))))
          ;; (the low 16 bits: without the 1 of \uXXXX)
          (local.set $j (select (i32.add (local.get $j) (i32.const 1)) (i32.const 21)
                                (i32.eq (i32.and (local.get $c) (i32.const 0xffff)) (i32.load8_u (local.get $j)))))
          (br $l))))
    (i32.add (local.get $p) (i32.const 1))
    (i32.eq (local.get $j) (i32.const 20)))

  ;; event folds the record at p into $c and $s and returns 1, or returns 0
  ;; when it fails.
  (func $event (param $p i32) (result i32)
    (local $c i32) (local $d i32) (local $q i32) (local $v i64)
    ;; The data, or for data that is not JSON the 'a' at 8, where the walk
    ;; below ends at once.
    (local.set $p (call $ws
      (select
        (i32.add (i32.add (local.get $p) (i32.const 48))
                 (i32.add (i32.load offset=36 (local.get $p)) (i32.load offset=40 (local.get $p))))
        (i32.const 8)
        (i32.eq (i32.load8_u offset=32 (local.get $p)) (i32.const 6)))))
    ;; Walk the value, with d the depth: a string at depth 1 followed by a
    ;; colon is a key of the top-level object.
    (loop $w
      (if (i32.eq (local.tee $c (i32.load8_u (local.get $p))) (i32.const 34))
        (then
          (call $str (local.get $p))
          (local.set $c)
          (local.set $p)
          ;; (ws only inside the object: after a top-level string, it would
          ;; run past the data)
          (if (i32.and (local.get $c) (i32.eq (local.get $d) (i32.const 1)))
            (then (if (i32.eq (i32.load8_u (local.tee $p (call $ws (local.get $p)))) (i32.const 58))
            (then
              ;; The value of amount_cents. An integer as strconv.ParseInt
              ;; reads it: '-' (d) and 1 to 19 digits (so v does not wrap),
              ;; not followed by '.', 'e' or 'E' (c is the next byte minus
              ;; '0'), within int64.
              (local.set $q (local.tee $p (i32.add
                (local.tee $p (call $ws (i32.add (local.get $p) (i32.const 1))))
                (local.tee $d (i32.eq (i32.load8_u (local.get $p)) (i32.const 45))))))
              (loop $n
                (if (i32.lt_u (local.tee $c (i32.sub (i32.load8_u (local.get $p)) (i32.const 48))) (i32.const 10))
                  (then
                    (local.set $v (i64.add (i64.mul (local.get $v) (i64.const 10)) (i64.extend_i32_u (local.get $c))))
                    (local.set $p (i32.add (local.get $p) (i32.const 1)))
                    (br $n))))
              (if (local.tee $c
                    (i32.and
                      (i32.and (i32.lt_u (i32.sub (i32.sub (local.get $p) (local.get $q)) (i32.const 1)) (i32.const 19))
                               (i32.ne (i32.or (local.get $c) (i32.const 32)) (i32.const 53)))
                      (i32.and (i32.ne (local.get $c) (i32.const -2))
                               ;; v <= 2^63-1+d: v-d in [0, 2^63-1], or -1 for -0
                               (i64.ge_s (i64.sub (local.get $v) (i64.extend_i32_u (local.get $d))) (i64.const -1)))))
                (then
                  (global.set $c (i64.add (global.get $c) (i64.const 1)))
                  (global.set $s (i64.add (global.get $s)
                    (select (i64.sub (i64.const 0) (local.get $v)) (local.get $v) (local.get $d))))))
              (return (local.get $c)))))))
        (else
          (local.set $c (i32.or (local.get $c) (i32.const 32))) ;; [ { -> {, ] } -> }
          (local.set $d (i32.sub (i32.add (local.get $d) (i32.eq (local.get $c) (i32.const 123)))
                                 (i32.eq (local.get $c) (i32.const 125))))
          (local.set $p (i32.add (local.get $p) (i32.const 1)))))
      (br_if $w (local.get $d)))
    (i32.const 0))

  (func (export "aegis_aggregate") (param $p i32) (param $len i32) (result i64)
    (local $e i32)
    (local.set $len (i32.add (local.get $p) (local.get $len))) ;; the end of the batch
    (local.set $p (i32.add (call $state (local.get $p)) (i32.const 4))) ;; the first record
    (local.set $e (i32.add (global.get $res) (i32.const 28)))
    (loop $l
      (if (i32.lt_u (local.get $p) (local.get $len))
        (then
          (if (i32.eqz (call $event (local.get $p)))
            (then
              (drop (call $grow (i32.add (local.get $e) (i32.const 53))))
              (i32.store (local.get $e) (i32.load offset=4 (local.get $p))) ;; Index
              (memory.copy (i32.add (local.get $e) (i32.const 4)) (i32.const 0) (i32.const 49))
              (local.set $e (i32.add (local.get $e) (i32.const 53)))))
          (local.set $p (i32.add (local.get $p) (i32.load (local.get $p))))
          (br $l))))
    (call $acc (local.get $e)))

  (func (export "aegis_merge") (param $p i32) (param $len i32) (result i64)
    (drop (call $add (call $state (local.get $p))))
    (call $acc (i32.add (global.get $res) (i32.const 28))))

  ;; field writes the n bytes of text at src and the number v in decimal at
  ;; o, then a '}' that it does not count, and returns the address after
  ;; the number. The digits are made backwards in [49, 69), before the '}'
  ;; at 69.
  (func $field (param $o i32) (param $src i32) (param $n i32) (param $v i64) (result i32)
    (memory.copy (local.get $o) (local.get $src) (local.get $n))
    (local.set $o (i32.add (local.get $o) (local.get $n)))
    (if (i64.lt_s (local.get $v) (i64.const 0))
      (then
        (i32.store8 (local.get $o) (i32.const 45))
        (local.set $o (i32.add (local.get $o) (i32.const 1)))
        (local.set $v (i64.sub (i64.const 0) (local.get $v))))) ;; -2^63 stays, read unsigned
    (local.set $n (i32.const 69))
    (loop $l
      (i64.store8 (local.tee $n (i32.sub (local.get $n) (i32.const 1)))
        (i64.add (i64.rem_u (local.get $v) (i64.const 10)) (i64.const 48)))
      (br_if $l (i32.eqz (i64.eqz (local.tee $v (i64.div_u (local.get $v) (i64.const 10)))))))
    (memory.copy (local.get $o) (local.get $n) (i32.sub (i32.const 70) (local.get $n)))
    (i32.add (local.get $o) (i32.sub (i32.const 69) (local.get $n))))

  (func (export "aegis_finish") (param $p i32) (param $len i32) (result i64)
    (local $q i32) (local $o i32) (local $c i32) (local $x i32) (local $h i32)
    (local.set $q (call $state (local.get $p))) ;; the window
    ;; at most 6 bytes per byte of the key, 4 numbers of 20 bytes, text
    (drop (call $grow (i32.add (global.get $res) (i32.add (i32.mul (local.get $len) (i32.const 6)) (i32.const 256)))))
    (memory.copy (global.get $res) (i32.const 128) (i32.const 89))
    (local.set $o (i32.add (global.get $res) (i32.const 89)))
    ;; the key is [p, len)
    (local.set $len (i32.add (i32.load (local.get $p)) (local.tee $p (i32.add (local.get $p) (i32.const 4)))))
    (loop $l
      (if (i32.lt_u (local.get $p) (local.get $len))
        (then
          ;; x: the letter of a short escape, or 0
          (local.set $x (i32.load8_u offset=256 (local.tee $c (i32.load8_u (local.get $p)))))
          ;; h: 4 characters after \u, or 0: 00 and two hex digits for a
          ;; control character without a short escape
          (local.set $h
            (select
              ;; "0000" + c>>4 in the third byte + the hex digit of c&15
              ;; (0 to 9, or 'a' - '0' - 10 more) in the fourth
              (i32.add
                (i32.add (i32.const 0x30303030) (i32.shl (i32.shr_u (local.get $c) (i32.const 4)) (i32.const 16)))
                (i32.shl
                  (i32.add (local.tee $h (i32.and (local.get $c) (i32.const 15)))
                           (i32.mul (i32.gt_u (local.get $h) (i32.const 9)) (i32.const 39)))
                  (i32.const 24)))
              (i32.const 0)
              (i32.and (i32.lt_u (local.get $c) (i32.const 32)) (i32.eqz (local.get $x)))))
          ;; U+2028 and U+2029 (E2 80 A8, E2 80 A9): 2028, 2029
          (if (i32.eq (i32.and (i32.load (local.get $p)) (i32.const 0xfeffff)) (i32.const 0xa880e2))
            (then
              (local.set $h (i32.add (i32.const 0x38323032)
                (i32.shl (i32.and (i32.load8_u offset=2 (local.get $p)) (i32.const 1)) (i32.const 24))))
              (local.set $p (i32.add (local.get $p) (i32.const 2)))))
          ;; write \u h, \ x, or the byte, and move past what counts
          (i32.store offset=2 (local.get $o) (local.get $h))
          (i32.store16 (local.get $o)
            (select (i32.const 0x755c)
              (select (i32.or (i32.const 92) (i32.shl (local.get $x) (i32.const 8))) (local.get $c) (local.get $x))
              (local.get $h)))
          (local.set $o (i32.add (local.get $o)
            (select (i32.const 6) (select (i32.const 2) (i32.const 1) (local.get $x)) (local.get $h))))
          (local.set $p (i32.add (local.get $p) (i32.const 1)))
          (br $l))))
    (i32.store offset=12 (global.get $res) ;; Size
      (i32.sub
        (local.tee $o (i32.sub
          (call $field
            (call $field
              (call $field
                (call $field (local.get $o) (i32.const 70) (i32.const 10) (global.get $c))
                (i32.const 80) (i32.const 13) (global.get $s))
              (i32.const 93) (i32.const 9) (i64.load (local.get $q)))
            (i32.const 102) (i32.const 7) (i64.load offset=8 (local.get $q)))
          (i32.sub (global.get $res) (i32.const 1)))) ;; the length, with the '}'
        (i32.const 12)))
    (i32.store offset=56 (global.get $res) (i32.sub (local.get $o) (i32.const 81))) ;; DataLen
    (call $pack (local.get $o)))
)
