;; spin.wat: a filter that spins, for the tests of the host's time and fuel
;; limits. For each event of a batch it reads the event's time t and:
;;
;;   t > 0   counts down from t in a loop: long but finite work;
;;   t = -1  loops forever in a tight loop;
;;   t = -2  loops forever in an outer loop around a finite inner one;
;;   t = -3  recurses forever through call;
;;   t = -4  recurses forever through call_indirect;
;;   else    does nothing.
;;
;; It keeps no event: the tests look at what ended the call and at the
;; fuel used, not at the output.
(module
  (type $spin (func (param i64) (result i64)))
  (memory (export "memory") 1)
  (table 1 funcref)
  (elem (i32.const 0) $indirect)

  ;; The result of every call: status 0, count 0, no errors.
  (data (i32.const 64) "\00\00\00\00\00\00\00\00\00\00\00\00")

  (func (export "aegis_abi_version") (result i32) (i32.const 0x00010000))
  (func (export "aegis_kinds") (result i32) (i32.const 1))

  ;; aegis_alloc: the input buffer is always at 1024, memory grows to hold
  ;; it; 0 if it cannot.
  (func (export "aegis_alloc") (param $size i32) (result i32)
    (local $need i64) (local $have i64)
    (local.set $need (i64.add (i64.const 1024) (i64.extend_i32_u (local.get $size))))
    (local.set $have (i64.shl (i64.extend_i32_u (memory.size)) (i64.const 16)))
    (if (i64.gt_u (local.get $need) (local.get $have))
      (then
        (if (i32.eq (memory.grow (i32.wrap_i64
                      (i64.shr_u (i64.add (i64.sub (local.get $need) (local.get $have)) (i64.const 0xffff))
                                 (i64.const 16))))
                    (i32.const -1))
          (then (return (i32.const 0))))))
    (i32.const 1024))

  ;; countdown returns 0 after n iterations.
  (func $countdown (param $n i64) (result i64)
    (block $done
      (loop $l
        (br_if $done (i64.le_s (local.get $n) (i64.const 0)))
        (local.set $n (i64.sub (local.get $n) (i64.const 1)))
        (br $l)))
    (local.get $n))

  (func $tight
    (loop $forever (br $forever)))

  (func $nested
    (loop $outer
      (drop (call $countdown (i64.const 100)))
      (br $outer)))

  (func $recurse (param $n i64) (result i64)
    (i64.add (call $recurse (i64.add (local.get $n) (i64.const 1))) (i64.const 1)))

  (func $indirect (param $n i64) (result i64)
    (i64.add
      (call_indirect (type $spin) (i64.add (local.get $n) (i64.const 1)) (i32.const 0))
      (i64.const 1)))

  (func (export "aegis_filter") (param $ptr i32) (param $len i32) (result i64)
    (local $n i32) (local $p i32) (local $t i64)
    (local.set $n (i32.load (local.get $ptr)))
    (local.set $p (i32.add (local.get $ptr) (i32.const 4)))
    (block $done
      (loop $each
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $t (i64.load offset=24 (local.get $p)))
        (if (i64.gt_s (local.get $t) (i64.const 0))
          (then (drop (call $countdown (local.get $t)))))
        (if (i64.eq (local.get $t) (i64.const -1)) (then (call $tight)))
        (if (i64.eq (local.get $t) (i64.const -2)) (then (call $nested)))
        (if (i64.eq (local.get $t) (i64.const -3)) (then (drop (call $recurse (i64.const 0)))))
        (if (i64.eq (local.get $t) (i64.const -4)) (then (drop (call $indirect (i64.const 0)))))
        (local.set $p (i32.add (local.get $p) (i32.load (local.get $p))))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $each)))
    ;; the result region: [64, 76)
    (i64.or (i64.shl (i64.const 64) (i64.const 32)) (i64.const 12)))
)
