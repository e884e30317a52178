;; orders_map.wat: the map step of the orders workload (BENCHMARKS.md),
;; written by hand against ABI v1 with no SDK and no WASI. It gives what the
;; Go SDK version (testplugins/orders/map) gives.
;;
;; For each event it emits one record: the input's id, time, source and
;; metadata, its type in ASCII upper case, and JSON data that is the input
;; object with three members set, as the SDK's Editor sets them:
;;   "type"         the upper-cased type, as a JSON string
;;   "amount_cents" round(amount * 100) as an integer, where amount is the
;;                  float64 the member "amount" parses to and rounding is
;;                  math.Round's (half away from zero); int64 saturates
;;   "region"       the fourth ':'-separated field of the source, or ""
;; A member the object has keeps its place (the first of that name; later
;; ones are copied as they are); one it lacks is appended before the
;; closing '}', in that order. Everything else is copied byte for byte.
;;
;; An event fails alone, as an event error (the rest of the batch maps):
;;   code 1 "amount is missing or not a number"  (the SDK's message) when the
;;          data is not JSON, not an object, has no "amount", or its amount
;;          is not a number or overflows float64;
;;   code 1 "data is not a JSON object" (the SDK's) when the object is cut
;;          short after its amount (a conforming host never sends that);
;;   code 2 "amount has more digits than this plugin handles" when the
;;          amount needs more than one exact operation to parse (more than
;;          19 significant digits, or digits above 2^53 times a power of
;;          ten other than 1) and is between 0.001 and 1e17, where it
;;          matters;
;;   code 2 "amount is out of the range this plugin handles" for the few
;;          numbers whose first 19 digits cannot tell whether they overflow
;;          float64.
;; The number is parsed as its significant digits m (at most 19 kept) and
;; a decimal exponent x; then amount = f64(m) * 10^x or f64(m) / 10^-x,
;; with m <= 2^53 and |x| <= 22 so that both operands are exact and the one
;; IEEE operation rounds correctly, which is what strconv.ParseFloat gives.
;; Numbers below 0.001 give 0 cents and numbers from 1e17 give the
;; saturated int64 whatever their digits, so they need no exact parse.
;;
;; It validates what it reads of the batch (the count against the input
;; length, every record size against the bytes left, the type, source and
;; data lengths against the record) and answers a malformed batch with
;; status 1 (bad input) and a short message instead of trapping. It does not
;; check what it does not read (UTF-8, metadata): that is the host's
;; encoder's job. Inside the data it never reads outside the data, whatever
;; the bytes.
;;
;; aegis_init accepts only an empty configuration, like the SDK's map
;; without OnConfig.
;;
;; Memory map:
;;   [0, 1024)              static data: prebuilt results, event error
;;                          entries, keys to append, escape and hex tables,
;;                          scratch for a decoded key and for digits
;;   [IN, IN+cap)           the input buffer handed out by aegis_alloc (IN = 1024)
;;   [errs, errs+cap/6+64)  failed events of the current call, 8 bytes each
;;                          (u32 index, u32 address of its prebuilt entry)
;;   [res, ...)             the result buffer, to the end of memory
;; A batch of n records takes at least 4 + 48n bytes, so the failed events
;; never take more than cap/6 bytes. An output record is at most its input
;; record plus 64 bytes plus 6 bytes per byte of type and source (escaped in
;; the JSON, 6 bytes for a control character); aegis_alloc makes room for
;; 2*cap + 64 bytes per event when memory allows (else for none of it),
;; and aegis_map grows memory before an event whose worst case does not fit,
;; failing the call with status 3 if memory cannot grow. The spare bytes
;; after the input let the record loop load a header's fields at the very end
;; of the input before it finds out that the record is cut short, and the
;; string scan load 16 bytes at a time (SIMD, which ABI v1 allows) past the
;; end of the data.
(module
  (memory (export "memory") 1)

  (global $IN i32 (i32.const 1024))         ;; start of the input buffer
  (global $cap (mut i32) (i32.const 0))     ;; its size
  (global $errs (mut i32) (i32.const 1024)) ;; start of the failed events
  (global $res (mut i32) (i32.const 1024))  ;; start of the result buffer

  ;; Prebuilt results: u32 status, u32 count (message length), u32 0, message.
  (data (i32.const 64) "\00\00\00\00\00\00\00\00\00\00\00\00") ;; ok, empty body
  (data (i32.const 128) "\02\00\00\00\22\00\00\00\00\00\00\00this plugin takes no configuration")
  (data (i32.const 192) "\01\00\00\00\26\00\00\00\00\00\00\00input is not in the aegis_alloc buffer")
  (data (i32.const 256) "\01\00\00\00\1c\00\00\00\00\00\00\00batch shorter than its count")
  (data (i32.const 320) "\01\00\00\00\19\00\00\00\00\00\00\00record size out of bounds")
  (data (i32.const 384) "\01\00\00\00\24\00\00\00\00\00\00\00record fields longer than the record")
  (data (i32.const 448) "\01\00\00\00\1b\00\00\00\00\00\00\00bytes after the last record")
  (data (i32.const 512) "\03\00\00\00\1d\00\00\00\00\00\00\00result does not fit in memory")
  ;; Event error entries without their index: u32 code, u32 length, message.
  (data (i32.const 576) "\01\00\00\00\21\00\00\00amount is missing or not a number")
  (data (i32.const 640) "\01\00\00\00\19\00\00\00data is not a JSON object")
  (data (i32.const 704) "\02\00\00\00\2f\00\00\00amount has more digits than this plugin handles")
  (data (i32.const 768) "\02\00\00\00\2e\00\00\00amount is out of the range this plugin handles")
  ;; Members to append, each after a comma that is skipped when it comes first.
  (data (i32.const 832) ",\"type\":")         ;; 8 bytes
  (data (i32.const 848) ",\"amount_cents\":") ;; 16 bytes
  (data (i32.const 880) ",\"region\":")       ;; 10 bytes
  ;; [896, 912): a key with escapes, decoded. [928, 960): digits, written
  ;; backwards from 960.
  ;; The short escape of each control character, 0 for \u00XX (as Go's
  ;; encoding/json and the SDK escape), then the hex digits.
  (data (i32.const 960) "\00\00\00\00\00\00\00\00btn\00fr\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00")
  (data (i32.const 992) "0123456789abcdef")

  ;; pack returns the region [ptr, ptr+len) as ptr<<32 | len.
  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or
      (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
      (i64.extend_i32_u (local.get $len))))

  (func (export "aegis_abi_version") (result i32)
    (i32.const 0x00010000)) ;; 1.0

  (func (export "aegis_kinds") (result i32)
    (i32.const 2)) ;; map

  ;; reserve makes the first end bytes of memory addressable, growing it if
  ;; needed; it returns 0 if memory cannot grow that far. end is an i64 so
  ;; that callers' sums never wrap.
  (func $reserve (param $end i64) (result i32)
    (local $have i64)
    (local.set $have (i64.shl (i64.extend_i32_u (memory.size)) (i64.const 16)))
    (if (i64.le_u (local.get $end) (local.get $have))
      (then (return (i32.const 1))))
    (if (i64.gt_u (local.get $end) (i64.const 0x100000000))
      (then (return (i32.const 0))))
    (i32.ne
      (memory.grow (i32.wrap_i64
        (i64.shr_u (i64.add (i64.sub (local.get $end) (local.get $have)) (i64.const 0xffff))
                   (i64.const 16))))
      (i32.const -1)))

  ;; aegis_alloc returns the input buffer, IN, after making sure that it holds
  ;; size bytes and that the failed-event area and a result buffer fit after
  ;; it: a generous one if memory allows, else just its header (aegis_map
  ;; grows memory as it needs). The previous buffer is dead by then, so a
  ;; bigger one simply replaces it at the same place. Returns 0 if memory
  ;; cannot grow enough for the input.
  (func (export "aegis_alloc") (param $size i32) (result i32)
    (local $cap i64) (local $errs i64) (local $res i64)
    (if (i32.le_u (local.get $size) (global.get $cap))
      (then (return (global.get $IN))))
    ;; round up to 8 so that the areas after it are aligned
    (local.set $cap
      (i64.and (i64.add (i64.extend_i32_u (local.get $size)) (i64.const 7)) (i64.const -8)))
    (local.set $errs (i64.add (i64.extend_i32_u (global.get $IN)) (local.get $cap)))
    (local.set $res
      (i64.add (local.get $errs)
        (i64.and (i64.add (i64.div_u (local.get $cap) (i64.const 6)) (i64.const 71)) (i64.const -8))))
    ;; res + 2*cap + 64 per event (at most cap/48 events) + 64
    (if (i32.eqz (call $reserve
                   (i64.add (i64.add (local.get $res) (i64.shl (local.get $cap) (i64.const 1)))
                            (i64.add (i64.shl (i64.div_u (local.get $cap) (i64.const 48)) (i64.const 6))
                                     (i64.const 64)))))
      (then
        (if (i32.eqz (call $reserve (i64.add (local.get $res) (i64.const 64))))
          (then (return (i32.const 0))))))
    (global.set $cap (i32.wrap_i64 (local.get $cap)))
    (global.set $errs (i32.wrap_i64 (local.get $errs)))
    (global.set $res (i32.wrap_i64 (local.get $res)))
    (global.get $IN))

  ;; aegis_init accepts the empty configuration {} (with any white space)
  ;; and refuses anything else with status 2, as the SDK does for a plugin
  ;; that registers no OnConfig.
  (func (export "aegis_init") (param $ptr i32) (param $len i32) (result i64)
    (local $q i32) (local $end i32)
    (if (i32.or (i32.ne (local.get $ptr) (global.get $IN))
                (i32.gt_u (local.get $len) (global.get $cap)))
      (then (return (call $pack (i32.const 192) (i32.const 50)))))
    (local.set $end (i32.add (local.get $ptr) (local.get $len)))
    (local.set $q (call $skipws (local.get $ptr) (local.get $end)))
    (block $refuse
      (br_if $refuse (i32.ge_u (local.get $q) (local.get $end)))
      (br_if $refuse (i32.ne (i32.load8_u (local.get $q)) (i32.const 0x7b))) ;; {
      (local.set $q (call $skipws (i32.add (local.get $q) (i32.const 1)) (local.get $end)))
      (br_if $refuse (i32.ge_u (local.get $q) (local.get $end)))
      (br_if $refuse (i32.ne (i32.load8_u (local.get $q)) (i32.const 0x7d))) ;; }
      (br_if $refuse (i32.ne (call $skipws (i32.add (local.get $q) (i32.const 1)) (local.get $end))
                             (local.get $end)))
      (return (call $pack (i32.const 64) (i32.const 12))))
    (call $pack (i32.const 128) (i32.const 46)))

  ;; aegis_map reads the batch at [ptr, ptr+len) and returns one record per
  ;; event (see $event), then an event error for each event that failed.
  (func (export "aegis_map") (param $ptr i32) (param $len i32) (result i64)
    (local $n i32)     ;; records in the batch
    (local $i i32)     ;; index of the current record
    (local $p i32)     ;; the current record
    (local $end i32)   ;; end of the input
    (local $size i32)  ;; size of the current record
    (local $tl i32)    ;; its type length
    (local $sl i32)    ;; its source length
    (local $need i64)  ;; the end of its output in the worst case
    (local $lim i64)   ;; the end of memory
    (local $out i32)   ;; where the next output record goes
    (local $count i32) ;; output records
    (local $msg i32)   ;; the entry of the current event's error, or 0
    (local $err i32)   ;; where the next failed event goes
    (local $q i32)     ;; the end of the event's output; later, each failed event

    ;; The input must be in the buffer aegis_alloc returned: the failed
    ;; events and the result come right after it.
    (if (i32.or (i32.ne (local.get $ptr) (global.get $IN))
                (i32.gt_u (local.get $len) (global.get $cap)))
      (then (return (call $pack (i32.const 192) (i32.const 50)))))

    ;; u32 count, and room for count records of at least 48 bytes each
    ;; (computed in i64: count*48 can exceed 32 bits).
    (if (i32.lt_u (local.get $len) (i32.const 4))
      (then (return (call $pack (i32.const 256) (i32.const 40)))))
    (local.set $n (i32.load (local.get $ptr)))
    (if (i64.gt_u (i64.mul (i64.extend_i32_u (local.get $n)) (i64.const 48))
                  (i64.extend_i32_u (i32.sub (local.get $len) (i32.const 4))))
      (then (return (call $pack (i32.const 256) (i32.const 40)))))

    (local.set $p (i32.add (local.get $ptr) (i32.const 4)))
    (local.set $end (i32.add (local.get $ptr) (local.get $len)))
    (local.set $out (i32.add (global.get $res) (i32.const 12)))
    (local.set $err (global.get $errs))
    (local.set $lim (i64.shl (i64.extend_i32_u (memory.size)) (i64.const 16)))

    (block $bad
      (block $done
        (loop $next
          (br_if $done (i32.eq (local.get $i) (local.get $n)))

          ;; One branch for all the checks: 48 <= size <= bytes left and
          ;; type + source + data lengths <= size - 48 (in i64, so the sum
          ;; cannot wrap; if size < 48 the subtraction wraps, but the first
          ;; test has failed already). When fewer than 48 bytes are left,
          ;; these loads read past the input into the failed-event area,
          ;; which is at least 64 bytes: harmless, and the size test then
          ;; fails.
          (local.set $size (i32.load (local.get $p)))
          (local.set $tl (i32.load offset=36 (local.get $p)))
          (local.set $sl (i32.load offset=40 (local.get $p)))
          (br_if $bad
            (i32.or
              (i32.or (i32.lt_u (local.get $size) (i32.const 48))
                      (i32.gt_u (local.get $size) (i32.sub (local.get $end) (local.get $p))))
              (i64.gt_u
                (i64.add (i64.add (i64.extend_i32_u (local.get $tl)) (i64.extend_i32_u (local.get $sl)))
                         (i64.load32_u offset=44 (local.get $p)))
                (i64.extend_i32_u (i32.sub (local.get $size) (i32.const 48))))))

          ;; Room for this event's output in the worst case, else grow.
          (local.set $need
            (i64.add
              (i64.add (i64.extend_i32_u (local.get $out)) (i64.extend_i32_u (local.get $size)))
              (i64.add
                (i64.mul (i64.add (i64.extend_i32_u (local.get $tl)) (i64.extend_i32_u (local.get $sl)))
                         (i64.const 6))
                (i64.const 64))))
          (if (i64.gt_u (local.get $need) (local.get $lim))
            (then
              (if (i32.eqz (call $reserve (local.get $need)))
                (then (return (call $pack (i32.const 512) (i32.const 41)))))
              (local.set $lim (i64.shl (i64.extend_i32_u (memory.size)) (i64.const 16)))))

          ;; Map it: a record at out, or an error to report.
          (call $event (local.get $p) (local.get $i) (local.get $out))
          (local.set $msg)
          (local.set $q)
          (if (local.get $msg)
            (then
              (i32.store (local.get $err) (local.get $i))
              (i32.store offset=4 (local.get $err) (local.get $msg))
              (local.set $err (i32.add (local.get $err) (i32.const 8))))
            (else
              (local.set $out (local.get $q))
              (local.set $count (i32.add (local.get $count) (i32.const 1)))))

          (local.set $p (i32.add (local.get $p) (local.get $size)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $next)))

      ;; the records must use the input exactly
      (if (i32.ne (local.get $p) (local.get $end))
        (then (return (call $pack (i32.const 448) (i32.const 39)))))

      ;; The event errors follow the records: u32 index, then the prebuilt
      ;; code, length and message, at most 4 + 59 bytes each.
      (local.set $need
        (i64.add (i64.extend_i32_u (local.get $out))
                 (i64.shl (i64.extend_i32_u (i32.sub (local.get $err) (global.get $errs))) (i64.const 3))))
      (if (i64.gt_u (local.get $need) (local.get $lim))
        (then
          (if (i32.eqz (call $reserve (local.get $need)))
            (then (return (call $pack (i32.const 512) (i32.const 41)))))))
      (local.set $q (global.get $errs))
      (block $written
        (loop $error
          (br_if $written (i32.eq (local.get $q) (local.get $err)))
          (i32.store (local.get $out) (i32.load (local.get $q)))
          (local.set $msg (i32.load offset=4 (local.get $q)))
          (local.set $size (i32.add (i32.load offset=4 (local.get $msg)) (i32.const 8)))
          (memory.copy (i32.add (local.get $out) (i32.const 4)) (local.get $msg) (local.get $size))
          (local.set $out (i32.add (local.get $out) (i32.add (local.get $size) (i32.const 4))))
          (local.set $q (i32.add (local.get $q) (i32.const 8)))
          (br $error)))

      ;; header: status 0, the records, the errors
      (i32.store (global.get $res) (i32.const 0))
      (i32.store offset=4 (global.get $res) (local.get $count))
      (i32.store offset=8 (global.get $res)
        (i32.shr_u (i32.sub (local.get $err) (global.get $errs)) (i32.const 3)))
      (return (call $pack (global.get $res) (i32.sub (local.get $out) (global.get $res)))))

    ;; $bad: a check failed at record i; say which (off the hot path).
    (if (i32.or (i32.lt_u (local.get $size) (i32.const 48))
                (i32.gt_u (local.get $size) (i32.sub (local.get $end) (local.get $p))))
      (then (return (call $pack (i32.const 320) (i32.const 37)))))
    (call $pack (i32.const 384) (i32.const 48)))

  ;; event maps the record at p, which aegis_map has checked, the i-th of
  ;; the batch, into a record at o. It returns the end of that record and 0,
  ;; or o and the address of the entry of the event error that fails it.
  (func $event (param $p i32) (param $i i32) (param $o i32) (result i32 i32)
    (local $tl i32) (local $sl i32)      ;; type and source lengths
    (local $t i32) (local $s i32)        ;; type and source
    (local $d i32) (local $dend i32)     ;; data
    (local $q i32) (local $c i32)
    (local $ks i32) (local $ke i32) (local $esc i32) ;; a member's key, quotes included
    (local $vs i32) (local $ve i32)      ;; its value
    (local $obj i32) (local $close i32)  ;; the object's '{' and '}'
    (local $members i32)                 ;; 1 if the object has any
    (local $bad i32)                     ;; 1 if it is not a well-formed object
    (local $seen i32)                    ;; which keys it has (bits of $classify)
    (local $ts i32) (local $te i32)      ;; the value of the first "type" ...
    (local $cs i32) (local $ce i32)      ;; ... "amount_cents" ...
    (local $rs i32) (local $re i32)      ;; ... "region" ...
    (local $as i32) (local $ae i32)      ;; ... and "amount" (0: none)
    (local $cents i64) (local $msg i32)
    (local $rp i32) (local $rl i32)      ;; the region, in the source
    (local $x i32)                       ;; where the output goes next
    (local $od i32)                      ;; the output's data
    (local $from i32)                    ;; input data not copied yet
    (local $at i32) (local $which i32)   ;; the next value to replace
    (local $j i32) (local $send i32)

    ;; Only JSON data has an amount: other kinds fail as the SDK's
    ;; e.Field("amount") finds nothing for them.
    (if (i32.ne (i32.load8_u offset=32 (local.get $p)) (i32.const 6))
      (then (return (local.get $o) (i32.const 576))))
    (local.set $tl (i32.load offset=36 (local.get $p)))
    (local.set $sl (i32.load offset=40 (local.get $p)))
    (local.set $t (i32.add (local.get $p) (i32.const 48)))
    (local.set $s (i32.add (local.get $t) (local.get $tl)))
    (local.set $d (i32.add (local.get $s) (local.get $sl)))
    (local.set $dend (i32.add (local.get $d) (i32.load offset=44 (local.get $p))))

    ;; Walk the top-level members as the SDK's Members does, noting the
    ;; value of the first member of each name that matters.
    (block $walked
      (block $fail
        (local.set $q (call $skipws (local.get $d) (local.get $dend)))
        (br_if $fail (i32.ge_u (local.get $q) (local.get $dend)))
        (br_if $fail (i32.ne (i32.load8_u (local.get $q)) (i32.const 0x7b))) ;; {
        (local.set $obj (local.get $q))
        (local.set $q (call $skipws (i32.add (local.get $q) (i32.const 1)) (local.get $dend)))
        (if (i32.lt_u (local.get $q) (local.get $dend))
          (then
            (if (i32.eq (i32.load8_u (local.get $q)) (i32.const 0x7d)) ;; } : {}
              (then
                (local.set $close (local.get $q))
                (br $walked)))))
        (local.set $members (i32.const 1))
        (loop $member
          ;; "key"
          (br_if $fail (i32.ge_u (local.get $q) (local.get $dend)))
          (br_if $fail (i32.ne (i32.load8_u (local.get $q)) (i32.const 0x22)))
          (local.set $ks (local.get $q))
          (call $skipstr (local.get $q) (local.get $dend))
          (local.set $esc)
          (local.set $ke)
          (br_if $fail (i32.eqz (local.get $ke)))
          ;; :
          (local.set $q (local.get $ke))
          (if (i32.le_u (i32.load8_u (local.get $q)) (i32.const 0x20))
            (then (local.set $q (call $skipws (local.get $q) (local.get $dend)))))
          (br_if $fail (i32.ge_u (local.get $q) (local.get $dend)))
          (br_if $fail (i32.ne (i32.load8_u (local.get $q)) (i32.const 0x3a)))
          ;; value
          (local.set $vs (i32.add (local.get $q) (i32.const 1)))
          (if (i32.le_u (i32.load8_u (local.get $vs)) (i32.const 0x20))
            (then (local.set $vs (call $skipws (local.get $vs) (local.get $dend)))))
          (local.set $ve (call $skipvalue (local.get $vs) (local.get $dend)))
          (br_if $fail (i32.eqz (local.get $ve)))
          ;; a name not seen before?
          (local.set $c
            (call $classify (i32.add (local.get $ks) (i32.const 1))
                            (i32.sub (i32.sub (local.get $ke) (local.get $ks)) (i32.const 2))
                            (local.get $esc)))
          (if (i32.and (local.get $c) (i32.xor (local.get $seen) (i32.const -1)))
            (then
              (local.set $seen (i32.or (local.get $seen) (local.get $c)))
              (if (i32.eq (local.get $c) (i32.const 1))
                (then (local.set $ts (local.get $vs)) (local.set $te (local.get $ve))))
              (if (i32.eq (local.get $c) (i32.const 2))
                (then (local.set $cs (local.get $vs)) (local.set $ce (local.get $ve))))
              (if (i32.eq (local.get $c) (i32.const 4))
                (then (local.set $rs (local.get $vs)) (local.set $re (local.get $ve))))
              (if (i32.eq (local.get $c) (i32.const 8))
                (then (local.set $as (local.get $vs)) (local.set $ae (local.get $ve))))))
          ;; , or }
          (local.set $q (local.get $ve))
          (if (i32.le_u (i32.load8_u (local.get $q)) (i32.const 0x20))
            (then (local.set $q (call $skipws (local.get $q) (local.get $dend)))))
          (br_if $fail (i32.ge_u (local.get $q) (local.get $dend)))
          (local.set $c (i32.load8_u (local.get $q)))
          (if (i32.eq (local.get $c) (i32.const 0x2c))
            (then
              (local.set $q (i32.add (local.get $q) (i32.const 1)))
              (if (i32.le_u (i32.load8_u (local.get $q)) (i32.const 0x20))
                (then (local.set $q (call $skipws (local.get $q) (local.get $dend)))))
              (br $member)))
          (br_if $fail (i32.ne (local.get $c) (i32.const 0x7d)))
          (local.set $close (local.get $q)))
        (br $walked))
      (local.set $bad (i32.const 1)))

    ;; The SDK looks the amount up first (a document that is not an object
    ;; has none), then edits the object.
    (if (i32.eqz (i32.and (local.get $seen) (i32.const 8)))
      (then (return (local.get $o) (i32.const 576))))
    (call $cents (local.get $as) (local.get $ae))
    (local.set $msg)
    (local.set $cents)
    (if (local.get $msg)
      (then (return (local.get $o) (local.get $msg))))
    (if (local.get $bad)
      (then (return (local.get $o) (i32.const 640))))

    ;; region: after the third ':' of the source, up to the next or the end
    (local.set $send (i32.add (local.get $s) (local.get $sl)))
    (local.set $j (local.get $s))
    (local.set $c (i32.const 3)) ;; colons still to pass
    (block $found
      (loop $scan
        (br_if $found (i32.ge_u (local.get $j) (local.get $send)))
        (if (i32.eq (i32.load8_u (local.get $j)) (i32.const 0x3a))
          (then
            (br_if $found (local.get $rp)) ;; the end of the region
            (local.set $c (i32.sub (local.get $c) (i32.const 1)))
            (if (i32.eqz (local.get $c))
              (then (local.set $rp (i32.add (local.get $j) (i32.const 1)))))))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $scan)))
    (if (local.get $rp)
      (then (local.set $rl (i32.sub (local.get $j) (local.get $rp)))))

    ;; The header is the input's (id, time, meta count, lengths), with the
    ;; index set, the kind JSON and flags 0; size and data length come last.
    (memory.copy (local.get $o) (local.get $p) (i32.const 48))
    (i32.store offset=4 (local.get $o) (local.get $i))
    (i32.store16 offset=32 (local.get $o) (i32.const 6))

    ;; The type in ASCII upper case, then the source.
    (local.set $x (i32.add (local.get $o) (i32.const 48)))
    (local.set $j (i32.const 0))
    (block $typed
      (loop $upper
        (br_if $typed (i32.ge_u (local.get $j) (local.get $tl)))
        (local.set $c (i32.load8_u (i32.add (local.get $t) (local.get $j))))
        (i32.store8 (i32.add (local.get $x) (local.get $j))
          (i32.sub (local.get $c)
                   (i32.shl (i32.lt_u (i32.sub (local.get $c) (i32.const 0x61)) (i32.const 26))
                            (i32.const 5))))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $upper)))
    (local.set $x (i32.add (local.get $x) (local.get $tl)))
    (memory.copy (local.get $x) (local.get $s) (local.get $sl))
    (local.set $x (i32.add (local.get $x) (local.get $sl)))

    ;; The data: the input from its '{' with the values of the members
    ;; noted replaced, in document order ...
    (local.set $od (local.get $x))
    (local.set $from (local.get $obj))
    (block $edited
      (loop $edit
        (local.set $at (i32.const -1))
        (local.set $which (i32.const 0))
        (if (i32.and (i32.ne (local.get $ts) (i32.const 0)) (i32.lt_u (local.get $ts) (local.get $at)))
          (then (local.set $at (local.get $ts)) (local.set $which (i32.const 1))))
        (if (i32.and (i32.ne (local.get $cs) (i32.const 0)) (i32.lt_u (local.get $cs) (local.get $at)))
          (then (local.set $at (local.get $cs)) (local.set $which (i32.const 2))))
        (if (i32.and (i32.ne (local.get $rs) (i32.const 0)) (i32.lt_u (local.get $rs) (local.get $at)))
          (then (local.set $at (local.get $rs)) (local.set $which (i32.const 4))))
        (br_if $edited (i32.eqz (local.get $which)))
        (memory.copy (local.get $x) (local.get $from) (i32.sub (local.get $at) (local.get $from)))
        (local.set $x (i32.add (local.get $x) (i32.sub (local.get $at) (local.get $from))))
        (if (i32.eq (local.get $which) (i32.const 1))
          (then
            (local.set $x (call $putstr (local.get $x) (local.get $t) (local.get $tl) (i32.const 1)))
            (local.set $from (local.get $te))
            (local.set $ts (i32.const 0))))
        (if (i32.eq (local.get $which) (i32.const 2))
          (then
            (local.set $x (call $putint (local.get $x) (local.get $cents)))
            (local.set $from (local.get $ce))
            (local.set $cs (i32.const 0))))
        (if (i32.eq (local.get $which) (i32.const 4))
          (then
            (local.set $x (call $putstr (local.get $x) (local.get $rp) (local.get $rl) (i32.const 0)))
            (local.set $from (local.get $re))
            (local.set $rs (i32.const 0))))
        (br $edit)))
    (memory.copy (local.get $x) (local.get $from) (i32.sub (local.get $close) (local.get $from)))
    (local.set $x (i32.add (local.get $x) (i32.sub (local.get $close) (local.get $from))))
    ;; ... then the members it lacks, a comma before each unless it comes
    ;; first in an empty object, and the '}'.
    (if (i32.eqz (i32.and (local.get $seen) (i32.const 1)))
      (then
        (local.set $x (call $putkey (local.get $x) (i32.const 832) (i32.const 8) (local.get $members)))
        (local.set $x (call $putstr (local.get $x) (local.get $t) (local.get $tl) (i32.const 1)))
        (local.set $members (i32.const 1))))
    (if (i32.eqz (i32.and (local.get $seen) (i32.const 2)))
      (then
        (local.set $x (call $putkey (local.get $x) (i32.const 848) (i32.const 16) (local.get $members)))
        (local.set $x (call $putint (local.get $x) (local.get $cents)))
        (local.set $members (i32.const 1))))
    (if (i32.eqz (i32.and (local.get $seen) (i32.const 4)))
      (then
        (local.set $x (call $putkey (local.get $x) (i32.const 880) (i32.const 10) (local.get $members)))
        (local.set $x (call $putstr (local.get $x) (local.get $rp) (local.get $rl) (i32.const 0)))))
    (i32.store8 (local.get $x) (i32.const 0x7d))
    (local.set $x (i32.add (local.get $x) (i32.const 1)))
    (i32.store offset=44 (local.get $o) (i32.sub (local.get $x) (local.get $od)))

    ;; The metadata as it was: the rest of the input record.
    (local.set $j (i32.sub (i32.add (local.get $p) (i32.load (local.get $p))) (local.get $dend)))
    (memory.copy (local.get $x) (local.get $dend) (local.get $j))
    (local.set $x (i32.add (local.get $x) (local.get $j)))
    (i32.store (local.get $o) (i32.sub (local.get $x) (local.get $o)))
    (local.get $x)
    (i32.const 0))

  ;; skipws returns the first position in [q, end) that is not JSON white
  ;; space, or end.
  (func $skipws (param $q i32) (param $end i32) (result i32)
    (local $c i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $q) (local.get $end)))
        (local.set $c (i32.load8_u (local.get $q)))
        (br_if $done
          (i32.eqz
            (i32.or (i32.or (i32.eq (local.get $c) (i32.const 0x20)) (i32.eq (local.get $c) (i32.const 0x09)))
                    (i32.or (i32.eq (local.get $c) (i32.const 0x0a)) (i32.eq (local.get $c) (i32.const 0x0d))))))
        (local.set $q (i32.add (local.get $q) (i32.const 1)))
        (br $next)))
    (local.get $q))

  ;; skipstr returns the position after the string whose '"' is at q, or 0
  ;; if it does not end before end, and 1 if it has a backslash, else 0.
  ;; It looks for '"' and '\' 16 bytes at a time; those loads may read up
  ;; to 15 bytes past end, which are still input or the failed-event area.
  (func $skipstr (param $q i32) (param $end i32) (result i32 i32)
    (local $v v128) (local $m i32) (local $esc i32)
    (local.set $q (i32.add (local.get $q) (i32.const 1)))
    (loop $next
      (if (i32.ge_u (local.get $q) (local.get $end))
        (then (return (i32.const 0) (local.get $esc))))
      (local.set $v (v128.load (local.get $q)))
      (local.set $m
        (i8x16.bitmask
          (v128.or (i8x16.eq (local.get $v) (v128.const i8x16 0x22 0x22 0x22 0x22 0x22 0x22 0x22 0x22 0x22 0x22 0x22 0x22 0x22 0x22 0x22 0x22))
                   (i8x16.eq (local.get $v) (v128.const i8x16 0x5c 0x5c 0x5c 0x5c 0x5c 0x5c 0x5c 0x5c 0x5c 0x5c 0x5c 0x5c 0x5c 0x5c 0x5c 0x5c)))))
      (if (i32.eqz (local.get $m))
        (then
          (local.set $q (i32.add (local.get $q) (i32.const 16)))
          (br $next)))
      (local.set $q (i32.add (local.get $q) (i32.ctz (local.get $m))))
      (if (i32.ge_u (local.get $q) (local.get $end))
        (then (return (i32.const 0) (local.get $esc))))
      (if (i32.eq (i32.load8_u (local.get $q)) (i32.const 0x22))
        (then (return (i32.add (local.get $q) (i32.const 1)) (local.get $esc))))
      ;; a backslash: skip it and the byte it escapes
      (local.set $esc (i32.const 1))
      (local.set $q (i32.add (local.get $q) (i32.const 2)))
      (br $next))
    (unreachable))

  ;; skipvalue returns the position after the JSON value at q, or 0 if it
  ;; does not end before end. Like the SDK's skipValue it finds where the
  ;; value ends without checking it: a string to its closing quote, an
  ;; object or array to its matching bracket (skipping strings), anything
  ;; else up to a ',', '}', ']' or white space.
  (func $skipvalue (param $q i32) (param $end i32) (result i32)
    (local $c i32) (local $depth i32) (local $start i32)
    (if (i32.ge_u (local.get $q) (local.get $end))
      (then (return (i32.const 0))))
    (local.set $c (i32.load8_u (local.get $q)))
    (if (i32.eq (local.get $c) (i32.const 0x22))
      (then
        (call $skipstr (local.get $q) (local.get $end))
        (drop)
        (return)))
    (if (i32.eq (i32.or (local.get $c) (i32.const 0x20)) (i32.const 0x7b)) ;; { or [
      (then
        (loop $next
          (if (i32.ge_u (local.get $q) (local.get $end))
            (then (return (i32.const 0))))
          (local.set $c (i32.load8_u (local.get $q)))
          (if (i32.eq (local.get $c) (i32.const 0x22))
            (then
              (call $skipstr (local.get $q) (local.get $end))
              (drop)
              (local.set $q)
              (if (i32.eqz (local.get $q))
                (then (return (i32.const 0))))
              (br $next)))
          (if (i32.eq (i32.or (local.get $c) (i32.const 0x20)) (i32.const 0x7b)) ;; { or [
            (then (local.set $depth (i32.add (local.get $depth) (i32.const 1)))))
          (if (i32.eq (i32.or (local.get $c) (i32.const 0x20)) (i32.const 0x7d)) ;; } or ]
            (then
              (local.set $depth (i32.sub (local.get $depth) (i32.const 1)))
              (if (i32.eqz (local.get $depth))
                (then (return (i32.add (local.get $q) (i32.const 1)))))))
          (local.set $q (i32.add (local.get $q) (i32.const 1)))
          (br $next))))
    (local.set $start (local.get $q))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $q) (local.get $end)))
        (local.set $c (i32.load8_u (local.get $q)))
        (br_if $done
          (i32.or
            (i32.or (i32.eq (local.get $c) (i32.const 0x2c))
                    (i32.eq (i32.or (local.get $c) (i32.const 0x20)) (i32.const 0x7d))) ;; , } ]
            (i32.or (i32.or (i32.eq (local.get $c) (i32.const 0x20)) (i32.eq (local.get $c) (i32.const 0x09)))
                    (i32.or (i32.eq (local.get $c) (i32.const 0x0a)) (i32.eq (local.get $c) (i32.const 0x0d))))))
        (local.set $q (i32.add (local.get $q) (i32.const 1)))
        (br $next)))
    (if (result i32) (i32.eq (local.get $q) (local.get $start))
      (then (i32.const 0))
      (else (local.get $q))))

  ;; classify tells which key the key text [k, k+len) is: 1 "type",
  ;; 2 "amount_cents", 4 "region", 8 "amount", 0 another. A key with escapes
  ;; (esc 1) is compared by its text, as the SDK's keyEquals does.
  (func $classify (param $k i32) (param $len i32) (param $esc i32) (result i32)
    (if (local.get $esc)
      (then
        (local.set $len (call $unescape (local.get $k) (local.get $len)))
        (local.set $k (i32.const 896))))
    (if (i32.eq (local.get $len) (i32.const 4))
      (then
        (return (i32.eq (i32.load (local.get $k)) (i32.const 0x65707974))))) ;; type
    (if (i32.eq (local.get $len) (i32.const 6))
      (then
        (if (i32.and (i32.eq (i32.load (local.get $k)) (i32.const 0x756f6d61))         ;; amou
                     (i32.eq (i32.load16_u offset=4 (local.get $k)) (i32.const 0x746e))) ;; nt
          (then (return (i32.const 8))))
        (if (i32.and (i32.eq (i32.load (local.get $k)) (i32.const 0x69676572))         ;; regi
                     (i32.eq (i32.load16_u offset=4 (local.get $k)) (i32.const 0x6e6f))) ;; on
          (then (return (i32.const 4))))
        (return (i32.const 0))))
    (if (i32.eq (local.get $len) (i32.const 12))
      (then
        (if (i32.and (i64.eq (i64.load (local.get $k)) (i64.const 0x635f746e756f6d61))   ;; amount_c
                     (i32.eq (i32.load offset=8 (local.get $k)) (i32.const 0x73746e65))) ;; ents
          (then (return (i32.const 2))))))
    (i32.const 0))

  ;; unescape decodes the key text [k, k+len), which has escapes, into
  ;; [896, 912) and returns its length, or 0 if it is longer than 12 bytes
  ;; (no key that matters is). Every character that cannot be part of such
  ;; a key (not ASCII, a control character, a bad escape) becomes 0xff.
  (func $unescape (param $k i32) (param $len i32) (result i32)
    (local $j i32) (local $n i32) (local $c i32) (local $h i32) (local $u i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $j) (local.get $len)))
        (if (i32.eq (local.get $n) (i32.const 13))
          (then (return (i32.const 0))))
        (local.set $c (i32.load8_u (i32.add (local.get $k) (local.get $j))))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (if (i32.eq (local.get $c) (i32.const 0x5c))
          (then
            (local.set $c (i32.const 0xff))
            (if (i32.lt_u (local.get $j) (local.get $len))
              (then
                (if (i32.eq (i32.load8_u (i32.add (local.get $k) (local.get $j))) (i32.const 0x75)) ;; \uXXXX
                  (then
                    (local.set $j (i32.add (local.get $j) (i32.const 1)))
                    (if (i32.le_u (i32.add (local.get $j) (i32.const 4)) (local.get $len))
                      (then
                        (local.set $u (i32.const 0))
                        (local.set $h (i32.const 0))
                        (block $hexed
                          (loop $hex
                            (br_if $hexed (i32.eq (local.get $h) (i32.const 4)))
                            (local.set $c (i32.load8_u (i32.add (i32.add (local.get $k) (local.get $j)) (local.get $h))))
                            (if (i32.le_u (i32.sub (local.get $c) (i32.const 0x30)) (i32.const 9))
                              (then (local.set $c (i32.sub (local.get $c) (i32.const 0x30))))
                              (else
                                (local.set $c (i32.sub (i32.or (local.get $c) (i32.const 0x20)) (i32.const 0x57)))
                                (if (i32.or (i32.lt_u (local.get $c) (i32.const 10)) (i32.gt_u (local.get $c) (i32.const 15)))
                                  (then (local.set $c (i32.const 0x10000))))))
                            (local.set $u (i32.or (i32.shl (local.get $u) (i32.const 4)) (local.get $c)))
                            (local.set $h (i32.add (local.get $h) (i32.const 1)))
                            (br $hex)))
                        (local.set $j (i32.add (local.get $j) (i32.const 4)))
                        ;; ASCII letters and '_' are all a key that matters has
                        (local.set $c (select (local.get $u) (i32.const 0xff)
                                        (i32.lt_u (local.get $u) (i32.const 0x80)))))
                      (else (local.set $c (i32.const 0xff)))))
                  (else
                    ;; \" \\ \/ \b \f \n \r \t and bad escapes: no letter
                    (local.set $j (i32.add (local.get $j) (i32.const 1)))))))))
        (i32.store8 (i32.add (i32.const 896) (local.get $n)) (local.get $c))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $next)))
    (local.get $n))

  ;; cents parses the JSON number [q, end) and returns round(amount*100)
  ;; as Go's int64(math.Round(amount*100)) gives it (saturating, as Go's
  ;; conversion does on wasm), and 0; or 0 and the address of the entry of
  ;; the event error when it is not a number or one this plugin does not
  ;; handle (see the header).
  (func $cents (param $q i32) (param $end i32) (result i64 i32)
    (local $neg i32)    ;; a leading '-'
    (local $c i32) (local $dg i32)
    (local $frac i32)   ;; 1 after the '.'
    (local $digits i32) ;; mantissa digits read
    (local $m i64)      ;; the first (at most 19) significant digits
    (local $nd i32)     ;; how many m holds
    (local $z i32)      ;; zeros after the last non-zero digit, not yet in m
    (local $sig i32)    ;; significant digits (from the first non-zero one)
    (local $long i32)   ;; 1 if a non-zero digit did not fit in m
    (local $k i32)      ;; fraction digits
    (local $e i32) (local $eneg i32) (local $ed i32) ;; the exponent
    (local $mag i32)    ;; the value is in [10^(mag-1), 10^mag)
    (local $x i32)      ;; the value is m * 10^x (when not long)
    (local $v i64)
    (local $f f64) (local $pw f64) (local $y f64) (local $r f64)

    (block $nan
      (if (i32.lt_u (local.get $q) (local.get $end))
        (then
          (if (i32.eq (i32.load8_u (local.get $q)) (i32.const 0x2d)) ;; -
            (then
              (local.set $neg (i32.const 1))
              (local.set $q (i32.add (local.get $q) (i32.const 1)))))))
      ;; a digit first: the SDK takes nothing else as a number
      (br_if $nan (i32.ge_u (local.get $q) (local.get $end)))
      (br_if $nan (i32.gt_u (i32.sub (i32.load8_u (local.get $q)) (i32.const 0x30)) (i32.const 9)))

      ;; the mantissa, integer part and fraction
      (block $mantissa
        (loop $next
          (br_if $mantissa (i32.ge_u (local.get $q) (local.get $end)))
          (local.set $c (i32.load8_u (local.get $q)))
          (if (i32.eq (local.get $c) (i32.const 0x2e)) ;; .
            (then
              (br_if $nan (local.get $frac))
              (local.set $frac (i32.const 1))
              (local.set $q (i32.add (local.get $q) (i32.const 1)))
              (br $next)))
          (local.set $dg (i32.sub (local.get $c) (i32.const 0x30)))
          (br_if $mantissa (i32.gt_u (local.get $dg) (i32.const 9)))
          (local.set $digits (i32.add (local.get $digits) (i32.const 1)))
          (local.set $k (i32.add (local.get $k) (local.get $frac)))
          (if (i32.eqz (local.get $dg))
            (then
              ;; a zero counts once a non-zero digit came before it
              (if (local.get $sig)
                (then
                  (local.set $sig (i32.add (local.get $sig) (i32.const 1)))
                  (local.set $z (i32.add (local.get $z) (i32.const 1))))))
            (else
              (local.set $sig (i32.add (local.get $sig) (i32.const 1)))
              (if (i32.eqz (local.get $long))
                (then
                  (if (i32.gt_u (i32.add (i32.add (local.get $nd) (local.get $z)) (i32.const 1)) (i32.const 19))
                    (then (local.set $long (i32.const 1)))
                    (else
                      ;; m = m * 10^(z+1) + digit
                      (local.set $nd (i32.add (i32.add (local.get $nd) (local.get $z)) (i32.const 1)))
                      (block $shifted
                        (loop $shift
                          (br_if $shifted (i32.eqz (local.get $z)))
                          (local.set $m (i64.mul (local.get $m) (i64.const 10)))
                          (local.set $z (i32.sub (local.get $z) (i32.const 1)))
                          (br $shift)))
                      (local.set $m (i64.add (i64.mul (local.get $m) (i64.const 10))
                                             (i64.extend_i32_u (local.get $dg))))))))))
          (local.set $q (i32.add (local.get $q) (i32.const 1)))
          (br $next)))
      (br_if $nan (i32.eqz (local.get $digits)))

      ;; the exponent, clamped far beyond where it matters
      (if (i32.lt_u (local.get $q) (local.get $end))
        (then
          (if (i32.eq (i32.or (i32.load8_u (local.get $q)) (i32.const 0x20)) (i32.const 0x65)) ;; e E
            (then
              (local.set $q (i32.add (local.get $q) (i32.const 1)))
              (if (i32.lt_u (local.get $q) (local.get $end))
                (then
                  (local.set $c (i32.load8_u (local.get $q)))
                  (if (i32.or (i32.eq (local.get $c) (i32.const 0x2d)) (i32.eq (local.get $c) (i32.const 0x2b)))
                    (then
                      (local.set $eneg (i32.eq (local.get $c) (i32.const 0x2d)))
                      (local.set $q (i32.add (local.get $q) (i32.const 1)))))))
              (block $exponent
                (loop $next
                  (br_if $exponent (i32.ge_u (local.get $q) (local.get $end)))
                  (local.set $dg (i32.sub (i32.load8_u (local.get $q)) (i32.const 0x30)))
                  (br_if $exponent (i32.gt_u (local.get $dg) (i32.const 9)))
                  (if (i32.lt_u (local.get $e) (i32.const 10000000))
                    (then (local.set $e (i32.add (i32.mul (local.get $e) (i32.const 10)) (local.get $dg)))))
                  (local.set $ed (i32.const 1))
                  (local.set $q (i32.add (local.get $q) (i32.const 1)))
                  (br $next)))
              (br_if $nan (i32.eqz (local.get $ed)))
              (if (local.get $eneg)
                (then (local.set $e (i32.sub (i32.const 0) (local.get $e)))))))))
      (br_if $nan (i32.ne (local.get $q) (local.get $end)))

      ;; zero, and values too small to make a cent: 0
      (if (i32.eqz (local.get $sig))
        (then (return (i64.const 0) (i32.const 0))))
      (local.set $mag (i32.sub (i32.add (local.get $sig) (local.get $e)) (local.get $k)))
      (if (i32.le_s (local.get $mag) (i32.const -3))
        (then (return (i64.const 0) (i32.const 0))))
      ;; From 1e308 on, ParseFloat may overflow, and then the SDK sees no
      ;; number. The first 19 digits v tell on which side of the halfway
      ;; point between MaxFloat64 and 2^1024, 1.797693134862315807937...e308,
      ;; the value is, except when they are its first 19 digits.
      (if (i32.ge_s (local.get $mag) (i32.const 310))
        (then (br $nan)))
      (if (i32.eq (local.get $mag) (i32.const 309))
        (then
          (local.set $v (local.get $m))
          (local.set $x (local.get $nd))
          (block $padded
            (loop $pad
              (br_if $padded (i32.eq (local.get $x) (i32.const 19)))
              (local.set $v (i64.mul (local.get $v) (i64.const 10)))
              (local.set $x (i32.add (local.get $x) (i32.const 1)))
              (br $pad)))
          (br_if $nan (i64.gt_u (local.get $v) (i64.const 1797693134862315807)))
          (if (i64.eq (local.get $v) (i64.const 1797693134862315807))
            (then (return (i64.const 0) (i32.const 768))))))
      ;; From 1e17 on, amount*100 >= 1e19 is beyond int64: saturate.
      (if (i32.ge_s (local.get $mag) (i32.const 18))
        (then
          (return
            (select (i64.const 0x8000000000000000) (i64.const 0x7fffffffffffffff) (local.get $neg))
            (i32.const 0))))

      ;; Else the exact parse: amount = m * 10^x, both exact (m <= 2^53, or
      ;; x = 0 and converting m rounds once; |x| <= 21 here).
      (local.set $x (i32.sub (local.get $mag) (local.get $nd)))
      (if (i32.or (local.get $long)
                  (i32.and (i64.gt_u (local.get $m) (i64.const 0x20000000000000))
                           (i32.ne (local.get $x) (i32.const 0))))
        (then (return (i64.const 0) (i32.const 704))))
      (local.set $f (f64.convert_i64_u (local.get $m)))
      (local.set $pw (f64.const 1))
      (local.set $c (select (i32.sub (i32.const 0) (local.get $x)) (local.get $x) (i32.lt_s (local.get $x) (i32.const 0))))
      (block $powered
        (loop $pow
          (br_if $powered (i32.eqz (local.get $c)))
          (local.set $pw (f64.mul (local.get $pw) (f64.const 10)))
          (local.set $c (i32.sub (local.get $c) (i32.const 1)))
          (br $pow)))
      (local.set $f
        (select (f64.div (local.get $f) (local.get $pw))
                (f64.mul (local.get $f) (local.get $pw))
                (i32.lt_s (local.get $x) (i32.const 0))))
      (if (local.get $neg)
        (then (local.set $f (f64.neg (local.get $f)))))
      ;; math.Round(amount*100): half away from zero
      (local.set $y (f64.mul (local.get $f) (f64.const 100)))
      (local.set $r (f64.trunc (local.get $y)))
      (if (f64.ge (f64.abs (f64.sub (local.get $y) (local.get $r))) (f64.const 0.5))
        (then (local.set $r (f64.add (local.get $r) (f64.copysign (f64.const 1) (local.get $y))))))
      (return (i64.trunc_sat_f64_s (local.get $r)) (i32.const 0)))
    ;; $nan
    (i64.const 0)
    (i32.const 576))

  ;; putkey writes the len-byte key at lit, with its leading comma only if
  ;; comma is 1, at x and returns the position after it.
  (func $putkey (param $x i32) (param $lit i32) (param $len i32) (param $comma i32) (result i32)
    (local.set $len (i32.add (i32.sub (local.get $len) (i32.const 1)) (local.get $comma)))
    (memory.copy (local.get $x)
                 (i32.sub (i32.add (local.get $lit) (i32.const 1)) (local.get $comma))
                 (local.get $len))
    (i32.add (local.get $x) (local.get $len)))

  ;; putstr writes the text [src, src+len) as a JSON string at x, in ASCII
  ;; upper case if upper is 1, escaped as the SDK's AppendString escapes it
  ;; (valid UTF-8 input: '"', '\', control characters, U+2028 and U+2029),
  ;; and returns the position after it. At most 2 + 6*len bytes.
  (func $putstr (param $x i32) (param $src i32) (param $len i32) (param $upper i32) (result i32)
    (local $j i32) (local $c i32) (local $e i32)
    (i32.store8 (local.get $x) (i32.const 0x22))
    (local.set $x (i32.add (local.get $x) (i32.const 1)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $j) (local.get $len)))
        (local.set $c (i32.load8_u (i32.add (local.get $src) (local.get $j))))
        (local.set $c
          (i32.sub (local.get $c)
                   (i32.shl (i32.and (local.get $upper)
                                     (i32.lt_u (i32.sub (local.get $c) (i32.const 0x61)) (i32.const 26)))
                            (i32.const 5))))
        (if (i32.or (i32.or (i32.lt_u (local.get $c) (i32.const 0x20)) (i32.eq (local.get $c) (i32.const 0xe2)))
                    (i32.or (i32.eq (local.get $c) (i32.const 0x22)) (i32.eq (local.get $c) (i32.const 0x5c))))
          (then
            (if (i32.ge_u (local.get $c) (i32.const 0x20))
              (then
                (if (i32.eq (local.get $c) (i32.const 0xe2))
                  (then
                    ;; U+2028 and U+2029 are E2 80 A8 and E2 80 A9
                    (if (i32.and
                          (i32.lt_u (i32.add (local.get $j) (i32.const 2)) (local.get $len))
                          (i32.and
                            (i32.eq (i32.load8_u offset=1 (i32.add (local.get $src) (local.get $j))) (i32.const 0x80))
                            (i32.eq (i32.or (i32.load8_u offset=2 (i32.add (local.get $src) (local.get $j))) (i32.const 1))
                                    (i32.const 0xa9))))
                      (then
                        (i32.store (local.get $x) (i32.const 0x3032755c)) ;; \u20
                        (i32.store8 offset=4 (local.get $x) (i32.const 0x32))
                        (i32.store8 offset=5 (local.get $x)
                          (i32.add (i32.const 0x30)
                                   (i32.and (i32.load8_u offset=2 (i32.add (local.get $src) (local.get $j))) (i32.const 15))))
                        (local.set $x (i32.add (local.get $x) (i32.const 6)))
                        (local.set $j (i32.add (local.get $j) (i32.const 3)))
                        (br $next)))
                    (i32.store8 (local.get $x) (local.get $c))
                    (local.set $x (i32.add (local.get $x) (i32.const 1))))
                  (else
                    ;; \" or \\
                    (i32.store8 (local.get $x) (i32.const 0x5c))
                    (i32.store8 offset=1 (local.get $x) (local.get $c))
                    (local.set $x (i32.add (local.get $x) (i32.const 2))))))
              (else
                (local.set $e (i32.load8_u offset=960 (local.get $c)))
                (if (local.get $e)
                  (then
                    (i32.store8 (local.get $x) (i32.const 0x5c))
                    (i32.store8 offset=1 (local.get $x) (local.get $e))
                    (local.set $x (i32.add (local.get $x) (i32.const 2))))
                  (else
                    (i32.store (local.get $x) (i32.const 0x3030755c)) ;; \u00
                    (i32.store8 offset=4 (local.get $x) (i32.load8_u offset=992 (i32.shr_u (local.get $c) (i32.const 4))))
                    (i32.store8 offset=5 (local.get $x) (i32.load8_u offset=992 (i32.and (local.get $c) (i32.const 15))))
                    (local.set $x (i32.add (local.get $x) (i32.const 6))))))))
          (else
            (i32.store8 (local.get $x) (local.get $c))
            (local.set $x (i32.add (local.get $x) (i32.const 1)))))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $next)))
    (i32.store8 (local.get $x) (i32.const 0x22))
    (i32.add (local.get $x) (i32.const 1)))

  ;; putint writes v in decimal at x and returns the position after it.
  (func $putint (param $x i32) (param $v i64) (result i32)
    (local $q i32) (local $n i32)
    (if (i64.lt_s (local.get $v) (i64.const 0))
      (then
        (i32.store8 (local.get $x) (i32.const 0x2d))
        (local.set $x (i32.add (local.get $x) (i32.const 1)))
        (local.set $v (i64.sub (i64.const 0) (local.get $v))))) ;; unsigned from here: -2^63 too
    (local.set $q (i32.const 960))
    (loop $digit
      (local.set $q (i32.sub (local.get $q) (i32.const 1)))
      (i32.store8 (local.get $q) (i32.add (i32.const 0x30) (i32.wrap_i64 (i64.rem_u (local.get $v) (i64.const 10)))))
      (local.set $v (i64.div_u (local.get $v) (i64.const 10)))
      (br_if $digit (i64.ne (local.get $v) (i64.const 0))))
    (local.set $n (i32.sub (i32.const 960) (local.get $q)))
    (memory.copy (local.get $x) (local.get $q) (local.get $n))
    (i32.add (local.get $x) (local.get $n)))
)
