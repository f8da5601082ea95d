//! The Merkle tree exactly as RFC 6962 §2.1 defines it: leaf hash = SHA-256(0x00 ‖ entry),
//! node hash = SHA-256(0x01 ‖ left ‖ right), a tree of n leaves splits at the largest power
//! of two smaller than n. Proofs follow RFC 6962 §2.1.1–2.1.2; verification follows
//! RFC 9162 §2.1.3.2 and §2.1.4.2, which a third party can re-implement from the RFC alone.
//!
//! [`Tree`] keeps every perfect subtree's hash, so roots and proofs for any tree size up to
//! the current one cost O(log² n) hashes at most, never a pass over all leaves.

use sha2::{Digest, Sha256};

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// SHA-256(0x00 ‖ entry).
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(entry);
    h.finalize().into()
}

/// SHA-256(0x01 ‖ left ‖ right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut buf = [0u8; 65];
    buf[0] = 1;
    buf[1..33].copy_from_slice(left);
    buf[33..].copy_from_slice(right);
    Sha256::digest(buf).into()
}

/// The root of the empty tree: SHA-256 of the empty string.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Largest power of two strictly smaller than `n` (n ≥ 2).
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// An append-only Merkle tree over leaf hashes, storing the hash of every perfect subtree.
#[derive(Clone, Debug, Default)]
pub struct Tree {
    /// `levels[h][i]` is the hash of the perfect subtree of 2^h leaves starting at leaf i·2^h.
    levels: Vec<Vec<Hash>>,
}

impl Tree {
    pub fn new() -> Self {
        Self { levels: vec![Vec::new()] }
    }

    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    pub fn leaf(&self, index: u64) -> Option<Hash> {
        self.levels.first()?.get(index as usize).copied()
    }

    pub fn push(&mut self, leaf: Hash) {
        if self.levels.is_empty() {
            self.levels.push(Vec::new());
        }
        self.levels[0].push(leaf);
        let mut h = 0;
        while self.levels[h].len().is_multiple_of(2) {
            let n = self.levels[h].len();
            let parent = node_hash(&self.levels[h][n - 2], &self.levels[h][n - 1]);
            if self.levels.len() == h + 1 {
                self.levels.push(Vec::new());
            }
            self.levels[h + 1].push(parent);
            h += 1;
        }
    }

    /// Root hash of the tree made of the first `size` leaves.
    pub fn root_at(&self, size: u64) -> Result<Hash, ProofError> {
        if size > self.size() {
            return Err(ProofError::SizeBeyondTree { size, tree_size: self.size() });
        }
        Ok(if size == 0 { empty_root() } else { self.subtree(0, size) })
    }

    pub fn root(&self) -> Hash {
        self.root_at(self.size()).expect("current size is always in range")
    }

    /// MTH(D[start..end]); RFC 6962's recursion only asks for ranges whose left part is a
    /// perfect subtree aligned to its size, which the stored levels answer directly.
    fn subtree(&self, start: u64, end: u64) -> Hash {
        let n = end - start;
        if n.is_power_of_two() && start.is_multiple_of(n) {
            let h = n.trailing_zeros() as usize;
            return self.levels[h][(start / n) as usize];
        }
        let k = split_point(n);
        node_hash(&self.subtree(start, start + k), &self.subtree(start + k, end))
    }

    /// The audit path of leaf `index` in the tree of the first `size` leaves, from the
    /// leaf up (RFC 6962 §2.1.1 PATH(m, D[n])).
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
        if size > self.size() {
            return Err(ProofError::SizeBeyondTree { size, tree_size: self.size() });
        }
        if index >= size {
            return Err(ProofError::IndexBeyondSize { index, size });
        }
        let mut path = Vec::new();
        self.path(index, 0, size, &mut path);
        Ok(path)
    }

    fn path(&self, m: u64, start: u64, end: u64, out: &mut Vec<Hash>) {
        let n = end - start;
        if n <= 1 {
            return;
        }
        let k = split_point(n);
        if m < k {
            self.path(m, start, start + k, out);
            out.push(self.subtree(start + k, end));
        } else {
            self.path(m - k, start + k, end, out);
            out.push(self.subtree(start, start + k));
        }
    }

    /// Proof that the tree of `old_size` leaves is a prefix of the tree of `new_size`
    /// leaves (RFC 6962 §2.1.2 PROOF(m, D[n])).
    pub fn consistency_proof(&self, old_size: u64, new_size: u64) -> Result<Vec<Hash>, ProofError> {
        if new_size > self.size() {
            return Err(ProofError::SizeBeyondTree { size: new_size, tree_size: self.size() });
        }
        if old_size > new_size {
            return Err(ProofError::IndexBeyondSize { index: old_size, size: new_size });
        }
        let mut proof = Vec::new();
        if old_size == 0 || old_size == new_size {
            return Ok(proof);
        }
        self.subproof(old_size, 0, new_size, true, &mut proof);
        Ok(proof)
    }

    fn subproof(&self, m: u64, start: u64, end: u64, complete: bool, out: &mut Vec<Hash>) {
        let n = end - start;
        if m == n {
            if !complete {
                out.push(self.subtree(start, end));
            }
            return;
        }
        let k = split_point(n);
        if m <= k {
            self.subproof(m, start, start + k, complete, out);
            out.push(self.subtree(start + k, end));
        } else {
            self.subproof(m - k, start + k, end, false, out);
            out.push(self.subtree(start, start + k));
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("tree size {size} is larger than the log ({tree_size} entries)")]
    SizeBeyondTree { size: u64, tree_size: u64 },
    #[error("index {index} is not below tree size {size}")]
    IndexBeyondSize { index: u64, size: u64 },
}

/// Verifies an inclusion proof (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(leaf: &Hash, index: u64, tree_size: u64, path: &[Hash], root: &Hash) -> bool {
    if index >= tree_size {
        return false;
    }
    let (mut fn_, mut sn) = (index, tree_size - 1);
    let mut r = *leaf;
    for p in path {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && r == *root
}

/// Verifies a consistency proof between two tree heads (RFC 9162 §2.1.4.2).
pub fn verify_consistency(old_size: u64, new_size: u64, old_root: &Hash, new_root: &Hash, proof: &[Hash]) -> bool {
    if old_size > new_size {
        return false;
    }
    if old_size == new_size {
        return proof.is_empty() && old_root == new_root;
    }
    if old_size == 0 {
        return proof.is_empty();
    }
    let mut path: Vec<Hash> = proof.to_vec();
    if old_size.is_power_of_two() {
        path.insert(0, *old_root);
    }
    let Some((first, rest)) = path.split_first() else { return false };
    let (mut fn_, mut sn) = (old_size - 1, new_size - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && fr == *old_root && sr == *new_root
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The leaves of the RFC 6962 test tree used by Certificate Transparency's reference code.
    const CT_LEAVES: [&str; 8] = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"];
    const CT_ROOTS: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    fn ct_tree() -> Tree {
        let mut t = Tree::new();
        for l in CT_LEAVES {
            t.push(leaf_hash(&hex::decode(l).unwrap()));
        }
        t
    }

    /// Straight transcription of RFC 6962's MTH, for cross-checking the cached tree.
    fn reference_root(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split_point(n as u64) as usize;
                node_hash(&reference_root(&leaves[..k]), &reference_root(&leaves[k..]))
            }
        }
    }

    #[test]
    fn roots_match_the_certificate_transparency_vectors() {
        let t = ct_tree();
        for (i, want) in CT_ROOTS.iter().enumerate() {
            assert_eq!(hex::encode(t.root_at(i as u64 + 1).unwrap()), *want, "size {}", i + 1);
        }
        assert_eq!(hex::encode(t.root_at(0).unwrap()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }

    #[test]
    fn inclusion_and_consistency_paths_match_the_rfc_examples() {
        let t = ct_tree();
        // RFC 6962 §2.1.3: the audit path for d0 in the 7-leaf tree is [b, h, l] = 3 hashes,
        // for d3 it is [c, g, l], for d4 [f, j, k], for d6 [i, k].
        let lens: Vec<usize> = [0u64, 3, 4, 6].iter().map(|&i| t.inclusion_proof(i, 7).unwrap().len()).collect();
        assert_eq!(lens, vec![3, 3, 3, 2]);
        // §2.1.3 consistency: 3→7 is [c, d, g, l], 4→7 is [l], 6→7 is [i, j, k].
        let lens: Vec<usize> = [3u64, 4, 6].iter().map(|&m| t.consistency_proof(m, 7).unwrap().len()).collect();
        assert_eq!(lens, vec![4, 1, 3]);
        assert_eq!(t.consistency_proof(4, 7).unwrap()[0], t.subtree(4, 7));
    }

    #[test]
    fn bad_ranges_are_errors() {
        let t = ct_tree();
        assert_eq!(t.inclusion_proof(8, 8), Err(ProofError::IndexBeyondSize { index: 8, size: 8 }));
        assert_eq!(t.inclusion_proof(0, 9), Err(ProofError::SizeBeyondTree { size: 9, tree_size: 8 }));
        assert!(t.consistency_proof(5, 4).is_err());
    }

    proptest! {
        #[test]
        fn every_proof_verifies_and_tampering_fails(n in 1u64..300, seed in any::<u64>()) {
            let mut t = Tree::new();
            let mut leaves = Vec::new();
            for i in 0..n {
                let h = leaf_hash(&(seed ^ i).to_le_bytes());
                leaves.push(h);
                t.push(h);
            }
            prop_assert_eq!(t.root(), reference_root(&leaves));
            let size = 1 + seed % n;
            let index = (seed / 7) % size;
            let root = t.root_at(size).unwrap();
            prop_assert_eq!(root, reference_root(&leaves[..size as usize]));
            let path = t.inclusion_proof(index, size).unwrap();
            prop_assert!(verify_inclusion(&leaves[index as usize], index, size, &path, &root));
            prop_assert!(!verify_inclusion(&leaf_hash(b"other"), index, size, &path, &root));
            if size > 1 {
                prop_assert!(!verify_inclusion(&leaves[index as usize], (index + 1) % size, size, &path, &root));
            }
            let old = (seed / 13) % (size + 1);
            let proof = t.consistency_proof(old, size).unwrap();
            let old_root = t.root_at(old).unwrap();
            prop_assert!(verify_consistency(old, size, &old_root, &root, &proof));
            if old > 0 && old < size {
                prop_assert!(!verify_consistency(old, size, &leaf_hash(b"x"), &root, &proof));
                let mut bad = proof.clone();
                bad[0][0] ^= 1;
                prop_assert!(!verify_consistency(old, size, &old_root, &root, &bad));
            }
        }
    }
}
