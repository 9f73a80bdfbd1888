;; limits.wat: a raw wasm agent (host ABI, internal/isolate/ABI.md) for the
;; session limit tests. The first body byte picks the behaviour:
;;   "L" loops forever (wall/CPU limit), "B" grows memory until it fails and
;;   then traps (memory limit), "T" traps; anything else answers "fine".
(module
  (memory (export "memory") 2)
  ;; 16: heap top
  (data (i32.const 16) "\00\10\00\00")
  (data (i32.const 64) "\0e\00\00\00{\"status\":200}fine")

  (func (export "ac_alloc") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (i32.load (i32.const 16)))
    (i32.store (i32.const 16) (i32.and (i32.add (i32.add (local.get $p) (local.get $n)) (i32.const 7)) (i32.const -8)))
    (if (i32.gt_u (i32.load (i32.const 16)) (i32.mul (memory.size) (i32.const 65536)))
      (then (if (i32.lt_s (memory.grow (i32.const 1)) (i32.const 0)) (then (return (i32.const 0))))))
    (local.get $p))
  (func (export "ac_free") (param i32))

  (func (export "ac_fetch") (param $req i32) (param $len i32) (result i64)
    (local $body i32) (local $c i32)
    (local.set $body (i32.add (i32.add (local.get $req) (i32.const 4)) (i32.load (local.get $req))))
    (if (i32.lt_u (local.get $body) (i32.add (local.get $req) (local.get $len)))
      (then (local.set $c (i32.load8_u (local.get $body)))))
    (if (i32.eq (local.get $c) (i32.const 76)) ;; L
      (then (loop $forever (br $forever))))
    (if (i32.eq (local.get $c) (i32.const 66)) ;; B
      (then
        (loop $grow
          (br_if $grow (i32.ge_s (memory.grow (i32.const 16)) (i32.const 0))))
        unreachable))
    (if (i32.eq (local.get $c) (i32.const 84)) ;; T
      (then unreachable))
    ;; 4 + 14 + 4 bytes at 64
    (i64.or (i64.shl (i64.const 64) (i64.const 32)) (i64.const 22))))
