// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Test, MerkleTrees} from "./lib/Test.sol";
import {CumulativeDistributor} from "../src/CumulativeDistributor.sol";
import {TestToken} from "../src/TestToken.sol";

/// Gas scenarios, one contract each so that `forge test --gas-report --match-contract <name>` reports
/// exactly one call of interest, with setUp's state committed beforehand (storage cold, as in a real
/// transaction). They also pass as ordinary tests.
abstract contract GasBase is Test {
    address internal constant OWNER = address(0x0A11CE);
    address internal constant ALICE = address(0xA1);
    TestToken internal token;
    CumulativeDistributor internal distributor;
    bytes32[] internal deepProof;

    function deploy() internal {
        token = new TestToken();
        distributor = new CumulativeDistributor(address(token), OWNER);
        token.mint(address(distributor), 1_000_000 ether);
    }

    /// A root for ALICE's leaf under 17 siblings: the proof depth of a tree of 10^5 accounts.
    function deepRoot(uint256 amount, uint256 salt) internal returns (bytes32 node) {
        delete deepProof;
        node = MerkleTrees.leaf(ALICE, amount);
        for (uint256 i = 0; i < 17; i++) {
            bytes32 sibling = keccak256(abi.encode("sibling", salt, i));
            deepProof.push(sibling);
            node = MerkleTrees.hashPair(node, sibling);
        }
    }

    function setRootAs(uint256 epochNumber, bytes32 r) internal {
        vm.prank(OWNER);
        distributor.setRoot(epochNumber, r);
    }
}

contract GasSetRootFirst is GasBase {
    function setUp() public {
        deploy();
    }

    function test_Gas_SetRoot_FirstEpoch() public {
        setRootAs(1, keccak256("root 1"));
    }
}

contract GasSetRootNext is GasBase {
    function setUp() public {
        deploy();
        setRootAs(1, keccak256("root 1"));
    }

    function test_Gas_SetRoot_LaterEpoch() public {
        setRootAs(2, keccak256("root 2"));
    }
}

contract GasClaimFirstSmallTree is GasBase {
    bytes32[] internal tree;

    function setUp() public {
        deploy();
        address[] memory accounts = new address[](4);
        uint256[] memory amounts = new uint256[](4);
        (accounts[0], amounts[0]) = (ALICE, 100 ether);
        (accounts[1], amounts[1]) = (address(0xB0B), 250 ether);
        (accounts[2], amounts[2]) = (address(0xCA401), 1);
        (accounts[3], amounts[3]) = (address(0xDA7E), 7 ether);
        tree = MerkleTrees.build(accounts, amounts);
        setRootAs(1, tree[0]);
    }

    function test_Gas_Claim_FirstClaim_Depth2() public {
        distributor.claim(ALICE, 100 ether, tree[0], MerkleTrees.proofOf(tree, MerkleTrees.leaf(ALICE, 100 ether)));
        assertEq(token.balanceOf(ALICE), 100 ether, "paid");
    }
}

contract GasClaimFirstDeepTree is GasBase {
    bytes32 internal r;

    function setUp() public {
        deploy();
        r = deepRoot(100 ether, 1);
        setRootAs(1, r);
    }

    function test_Gas_Claim_FirstClaim_Depth17() public {
        distributor.claim(ALICE, 100 ether, r, deepProof);
        assertEq(token.balanceOf(ALICE), 100 ether, "paid");
    }
}

contract GasClaimAgainDeepTree is GasBase {
    bytes32 internal r;

    function setUp() public {
        deploy();
        bytes32 first = deepRoot(100 ether, 1);
        setRootAs(1, first);
        distributor.claim(ALICE, 100 ether, first, deepProof);
        r = deepRoot(160 ether, 2);
        setRootAs(2, r);
    }

    function test_Gas_Claim_LaterClaim_Depth17() public {
        distributor.claim(ALICE, 160 ether, r, deepProof);
        assertEq(token.balanceOf(ALICE), 160 ether, "paid the difference");
    }
}
