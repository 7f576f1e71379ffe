// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @notice The few forge cheatcodes these tests use. forge answers calls to this address
/// (address(bytes20(uint160(uint256(keccak256("hevm cheat code")))))) itself.
interface Vm {
    function prank(address sender) external;
    function startPrank(address sender) external;
    function stopPrank() external;
    function expectRevert(bytes calldata revertData) external;
    function expectRevert(bytes4 revertSelector) external;
    function expectEmit(bool checkTopic1, bool checkTopic2, bool checkTopic3, bool checkData) external;
    function expectEmit(bool checkTopic1, bool checkTopic2, bool checkTopic3, bool checkData, address emitter)
        external;
    function assume(bool condition) external pure;
    function toString(uint256 value) external pure returns (string memory);
    function toString(bytes32 value) external pure returns (string memory);
    function toString(address value) external pure returns (string memory);
}

/// @notice A minimal test base: the cheatcode handle and assertions that revert with a message
/// (forge counts a test that reverts as failed).
abstract contract Test {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    function fail(string memory message) internal pure {
        revert(message);
    }

    function assertTrue(bool condition, string memory what) internal pure {
        if (!condition) fail(string.concat(what, ": expected true"));
    }

    function assertEq(uint256 actual, uint256 expected, string memory what) internal pure {
        if (actual != expected) {
            fail(string.concat(what, ": got ", vm.toString(actual), ", expected ", vm.toString(expected)));
        }
    }

    function assertEq(bytes32 actual, bytes32 expected, string memory what) internal pure {
        if (actual != expected) {
            fail(string.concat(what, ": got ", vm.toString(actual), ", expected ", vm.toString(expected)));
        }
    }

    function assertEq(address actual, address expected, string memory what) internal pure {
        if (actual != expected) {
            fail(string.concat(what, ": got ", vm.toString(actual), ", expected ", vm.toString(expected)));
        }
    }
}

/// @notice Builds OpenZeppelin StandardMerkleTree-shaped trees for ["address","uint256"] leaves, so
/// tests can make roots and proofs on the chain: leaf hashes sorted ascending, an array tree of length
/// 2n-1 with sorted leaf k at index 2n-2-k, each parent the commutative keccak of its two children.
library MerkleTrees {
    function leaf(address account, uint256 cumulativeAmount) internal pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(account, cumulativeAmount))));
    }

    function hashPair(bytes32 a, bytes32 b) internal pure returns (bytes32) {
        return a < b ? keccak256(abi.encode(a, b)) : keccak256(abi.encode(b, a));
    }

    /// @return tree The whole tree; tree[0] is the root.
    function build(address[] memory accounts, uint256[] memory amounts) internal pure returns (bytes32[] memory tree) {
        uint256 n = accounts.length;
        require(n > 0 && n == amounts.length, "MerkleTrees: bad input");
        bytes32[] memory leaves = new bytes32[](n);
        for (uint256 i = 0; i < n; i++) {
            leaves[i] = leaf(accounts[i], amounts[i]);
        }
        // Insertion sort, ascending: the trees here have a handful of leaves.
        for (uint256 i = 1; i < n; i++) {
            bytes32 key = leaves[i];
            uint256 j = i;
            while (j > 0 && leaves[j - 1] > key) {
                leaves[j] = leaves[j - 1];
                j--;
            }
            leaves[j] = key;
        }
        tree = new bytes32[](2 * n - 1);
        for (uint256 k = 0; k < n; k++) {
            tree[tree.length - 1 - k] = leaves[k];
        }
        for (uint256 i = tree.length - n; i > 0; i--) {
            uint256 node = i - 1;
            tree[node] = hashPair(tree[2 * node + 1], tree[2 * node + 2]);
        }
    }

    /// @return proof The siblings of `leafHash` from the bottom up, as OpenZeppelin's getProof gives.
    function proofOf(bytes32[] memory tree, bytes32 leafHash) internal pure returns (bytes32[] memory proof) {
        uint256 index = type(uint256).max;
        for (uint256 i = tree.length / 2; i < tree.length; i++) {
            if (tree[i] == leafHash) {
                index = i;
                break;
            }
        }
        require(index != type(uint256).max, "MerkleTrees: leaf not in tree");
        uint256 depth = 0;
        for (uint256 i = index; i > 0; i = (i - 1) / 2) {
            depth++;
        }
        proof = new bytes32[](depth);
        for (uint256 d = 0; d < depth; d++) {
            uint256 sibling = index % 2 == 1 ? index + 1 : index - 1;
            proof[d] = tree[sibling];
            index = (index - 1) / 2;
        }
    }
}
